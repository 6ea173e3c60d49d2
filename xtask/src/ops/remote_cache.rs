//! The remote verdict cache: passing verdicts shared between machines
//! through a repository of an OCI registry, trusted only when a trusted
//! writer signed them.
//!
//! An entry is an OCI artifact tagged by the chart's content key (64 hex
//! digits fit the tag grammar): an image manifest with its own
//! `artifactType`, the empty config, one small JSON layer with the verdict
//! (steps and measured duration), and annotations naming the content key,
//! the chart, the signer's public key and its Ed25519 signature over
//! (engine, content key, chart, layer digest). A reader ignores, with one
//! warning naming the entry, anything unsigned, signed by a key it does not
//! trust, with a bad signature, or claiming another key or chart than the
//! tag it was found under (a forged or copied entry); the chart is then
//! checked as if there were no entry, and a trusted writer overwrites it.
//!
//! Policy: the local cache stays first and a remote hit is stored in it;
//! reading is the default, writing needs `--remote-cache-write` and the
//! key named by `XTASK_REMOTE_CACHE_KEY`; only passing verdicts are
//! written. Lookups run in parallel within [`LOOKUP_BUDGET`] in all: a
//! registry that is down or slow costs a warning and at most that long,
//! never a failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::core::context::Context;
use crate::core::outcome::{CacheSource, ChartResult, Status, StepResult};
use crate::exec::oci::{self, Client, Reference};
use crate::ops::cache::Cache;
use crate::util::exit;
use crate::util::signing::{PrivateKey, PublicKey};

/// How long all lookups of one run may take together, the first answer of
/// the registry included.
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(1000);
/// How long a writer may spend pushing its verdicts.
const WRITE_BUDGET: Duration = Duration::from_secs(60);
/// Requests in flight at once: lookups wait on the network, not the CPU.
pub const PARALLEL: usize = 16;
/// The environment variable naming a writer's private key file.
pub const KEY_VARIABLE: &str = "XTASK_REMOTE_CACHE_KEY";

const ARTIFACT_TYPE: &str = "application/vnd.robot-shop.xtask.verdict.v1";
const LAYER_TYPE: &str = "application/vnd.robot-shop.xtask.verdict.v1+json";
const FORMAT: &str = "robot-shop-xtask remote verdict v1";
const ANNOTATION_KEY: &str = "dev.robot-shop.xtask.content-key";
const ANNOTATION_CHART: &str = "dev.robot-shop.xtask.chart";
const ANNOTATION_SIGNER: &str = "dev.robot-shop.xtask.signer";
const ANNOTATION_SIGNATURE: &str = "dev.robot-shop.xtask.signature";

/// The remote cache flags of one run.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// `oci://HOST/PATH` over xtask.toml's `[cache] remote`.
    pub url: Option<String>,
    /// Push passing verdicts (signed with `XTASK_REMOTE_CACHE_KEY`).
    pub write: bool,
    /// Public keys trusted besides xtask.toml's `trusted-keys`.
    pub trust: Vec<String>,
}

/// A verdict as it is shared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub format: String,
    /// `lint` or `verify`: whose verdict it is.
    pub engine: String,
    pub key: String,
    pub chart: String,
    /// How long the chart's checks took when they ran (for balancing CI jobs).
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
}

/// What the run reports about the remote cache (`remote_cache` in JSON).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub url: String,
    /// Whether the registry answered at all.
    pub reachable: bool,
    /// Charts answered from the remote cache.
    pub hits: usize,
    /// Entries found and ignored (untrusted, forged, unreadable).
    pub ignored: usize,
    /// Lookups with no entry, or not answered within the budget.
    pub missed: usize,
    /// Entries this run wrote.
    pub written: usize,
    /// Wall time of the lookups, the registry's first answer included.
    pub lookup_ms: u64,
}

/// A configured remote cache for one engine.
pub struct RemoteCache {
    client: Client,
    trusted: Vec<PublicKey>,
    signer: Option<PrivateKey>,
    engine: &'static str,
    summary: Mutex<Summary>,
}

/// A request the registry did not answer in time: a miss, not a bad entry.
#[derive(Debug)]
struct Unanswered(anyhow::Error);

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Unanswered {}

/// What one lookup found.
enum Found {
    Hit(Verdict),
    Missing,
    Ignored,
}

impl RemoteCache {
    /// The remote cache of this run, or `None` when none is configured.
    /// Bad settings are usage errors; a writer without its key is an
    /// environment error. Nothing is sent to the registry yet.
    pub fn open(ctx: &Context, opts: &Opts, engine: &'static str) -> Result<Option<RemoteCache>> {
        let url = match (&opts.url, &ctx.config.cache.remote) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.clone(),
            (None, None) if opts.write => {
                return exit::usage("--remote-cache-write: no remote cache (--remote-cache oci://HOST/PATH or [cache] remote in xtask.toml)")
            }
            (None, None) => return Ok(None),
        };
        let reference = Reference::parse(&url).map_err(|err| exit::UsageError(format!("remote cache: {err}")))?;
        let mut trusted = Vec::new();
        for key in ctx.config.cache.trusted_keys.iter().chain(&opts.trust) {
            trusted.push(PublicKey::parse(key).map_err(|err| exit::UsageError(format!("trusted key: {err}")))?);
        }
        let signer = if opts.write {
            let Some(path) = std::env::var_os(KEY_VARIABLE).filter(|p| !p.is_empty()) else {
                return exit::environment(format!(
                    "--remote-cache-write: set {KEY_VARIABLE} to the private key file (`cargo xtask cache keygen --out FILE`)"
                ));
            };
            let key = PrivateKey::read(std::path::Path::new(&path))
                .map_err(|err| exit::EnvironmentError(format!("{KEY_VARIABLE}: {err:#}")))?;
            // A writer reads its own entries back: it trusts its own key.
            trusted.push(key.public());
            Some(key)
        } else {
            None
        };
        if trusted.is_empty() {
            eprintln!(
                "warning: remote cache {reference}: no trusted keys ([cache] trusted-keys or --remote-cache-trust); not used"
            );
            return Ok(None);
        }
        let summary = Summary { url: reference.to_string(), ..Summary::default() };
        let client = Client::new(reference, false, opts.write, PARALLEL);
        Ok(Some(RemoteCache { client, trusted, signer, engine, summary: Mutex::new(summary) }))
    }

    pub fn writes(&self) -> bool {
        self.signer.is_some()
    }

    pub fn summary(&self) -> Summary {
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Looks up `wanted` (`(key, chart)`) within the budget, in parallel;
    /// returns the verdicts found and trusted, by position in `wanted`.
    /// Each one is stored in `local` too.
    pub fn lookup(&self, wanted: &[(String, String)], local: &Cache) -> BTreeMap<usize, Verdict> {
        let started = Instant::now();
        let deadline = started + LOOKUP_BUDGET;
        let mut found: BTreeMap<usize, Found> = BTreeMap::new();
        let reachable = !wanted.is_empty() && self.reachable(deadline);
        if reachable {
            let next = AtomicUsize::new(0);
            let results = Mutex::new(&mut found);
            std::thread::scope(|scope| {
                for _ in 0..PARALLEL.min(wanted.len()) {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= wanted.len() || Instant::now() >= deadline {
                            break;
                        }
                        let (key, chart) = &wanted[i];
                        let one = self.lookup_one(key, chart, deadline);
                        results.lock().unwrap_or_else(|e| e.into_inner()).insert(i, one);
                    });
                }
            });
        }
        let mut hits = BTreeMap::new();
        let mut summary = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        summary.reachable |= reachable;
        let answered = found.len();
        for (i, one) in found {
            match one {
                Found::Hit(verdict) => {
                    if let Err(err) = local.put(&verdict.key, &verdict.chart, &verdict.steps) {
                        eprintln!("warning: cannot store the remote verdict of {} locally: {err:#}", verdict.chart);
                    }
                    summary.hits += 1;
                    hits.insert(i, verdict);
                }
                Found::Ignored => summary.ignored += 1,
                Found::Missing => summary.missed += 1,
            }
        }
        if reachable && answered < wanted.len() {
            eprintln!(
                "warning: remote cache {}: {} of {} lookups not answered within {:.1}s; those charts are checked",
                summary.url,
                wanted.len() - answered,
                wanted.len(),
                LOOKUP_BUDGET.as_secs_f64()
            );
        }
        summary.missed += wanted.len() - answered;
        summary.lookup_ms += started.elapsed().as_millis() as u64;
        hits
    }

    /// Whether the registry answers; a warning when it does not.
    fn reachable(&self, deadline: Instant) -> bool {
        match self.client.ping(deadline) {
            Ok(()) => true,
            Err(err) => {
                eprintln!("warning: remote cache {}: {err:#}; checking without it", self.client.reference());
                false
            }
        }
    }

    fn lookup_one(&self, key: &str, chart: &str, deadline: Instant) -> Found {
        if !oci::is_tag(key) {
            return Found::Missing;
        }
        let entry = format!("{}:{key}", self.client.reference());
        let manifest = match self.client.manifest(key, deadline) {
            Ok(Some((manifest, _digest))) => manifest,
            Ok(None) => return Found::Missing,
            // Out of time or a broken connection: a miss, the chart is checked.
            Err(_) => return Found::Missing,
        };
        match self.verified(key, chart, &manifest, deadline) {
            Ok(verdict) => Found::Hit(verdict),
            Err(reason) if reason.is::<Unanswered>() => Found::Missing,
            Err(reason) => {
                eprintln!("warning: remote cache entry {entry} ignored for chart {chart}: {reason:#}");
                Found::Ignored
            }
        }
    }

    /// The verdict of an entry, if every check holds.
    fn verified(&self, key: &str, chart: &str, manifest: &[u8], deadline: Instant) -> Result<Verdict> {
        let manifest: serde_json::Value = serde_json::from_slice(manifest).context("the manifest is not JSON")?;
        if manifest["artifactType"] != ARTIFACT_TYPE {
            anyhow::bail!("not a verdict (artifactType {})", manifest["artifactType"]);
        }
        let annotation = |name: &str| manifest["annotations"][name].as_str().unwrap_or_default().to_string();
        let (claimed_key, claimed_chart) = (annotation(ANNOTATION_KEY), annotation(ANNOTATION_CHART));
        if claimed_key != key || claimed_chart != chart {
            anyhow::bail!(
                "it claims content key {claimed_key:?} of chart {claimed_chart:?}, not this chart's key {key}"
            );
        }
        let layers = manifest["layers"].as_array().map(Vec::as_slice).unwrap_or_default();
        let [layer] = layers else { anyhow::bail!("{} layers, expected one", layers.len()) };
        let digest = layer["digest"].as_str().unwrap_or_default();
        if layer["mediaType"] != LAYER_TYPE || !digest.starts_with("sha256:") {
            anyhow::bail!("its layer is not a verdict");
        }
        let signer = annotation(ANNOTATION_SIGNER);
        if signer.is_empty() {
            anyhow::bail!("unsigned");
        }
        let Some(public) = self.trusted.iter().find(|k| k.to_string() == signer) else {
            anyhow::bail!("signed by {signer}, which is not a trusted key");
        };
        if !public.verifies(&self.message(key, chart, digest), &annotation(ANNOTATION_SIGNATURE)) {
            anyhow::bail!("its signature by {signer} does not verify");
        }
        let embedded = layer["data"].as_str().and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        let bytes = match embedded {
            Some(bytes) if oci::sha256_digest(&bytes) == digest => bytes,
            Some(_) => anyhow::bail!("its embedded verdict does not match the layer digest {digest}"),
            // Out of time or a broken connection is a miss, not a bad entry.
            None => self.client.blob(digest, deadline).map_err(Unanswered)?,
        };
        let verdict: Verdict = serde_json::from_slice(&bytes).context("its verdict does not parse")?;
        if verdict.format != FORMAT || verdict.engine != self.engine || verdict.key != key || verdict.chart != chart {
            anyhow::bail!("its verdict is for {} {} of chart {}", verdict.engine, verdict.key, verdict.chart);
        }
        if verdict.steps.iter().any(|s| s.status == Status::Failed) {
            anyhow::bail!("its verdict is not a pass");
        }
        Ok(verdict)
    }

    /// What is signed: the engine, the content key, the chart and the
    /// digest of the verdict's bytes, each on its own line.
    fn message(&self, key: &str, chart: &str, digest: &str) -> Vec<u8> {
        format!("{FORMAT}\nengine {}\nkey {key}\nchart {chart}\nverdict {digest}\n", self.engine).into_bytes()
    }

    /// Pushes each passing verdict (`(key, chart, steps, duration)`) that
    /// the remote did not answer with a trusted entry, overwriting whatever
    /// was tagged there. Returns how many were written; failures are
    /// warnings.
    pub fn publish(&self, verdicts: Vec<(String, String, Vec<StepResult>, u64)>) -> usize {
        let Some(signer) = &self.signer else { return 0 };
        let verdicts: Vec<_> = verdicts
            .into_iter()
            .filter(|(key, _, steps, _)| oci::is_tag(key) && steps.iter().all(|s| s.status != Status::Failed))
            .collect();
        if verdicts.is_empty() {
            return 0;
        }
        let deadline = Instant::now() + WRITE_BUDGET;
        if let Err(err) = self.client.ping(deadline).and_then(|()| self.client.push_blob(oci::EMPTY_BLOB, deadline)) {
            eprintln!("warning: remote cache {}: cannot write: {err:#}", self.client.reference());
            return 0;
        }
        let next = AtomicUsize::new(0);
        let written = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL.min(verdicts.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((key, chart, steps, duration_ms)) = verdicts.get(i) else { break };
                    let verdict = Verdict {
                        format: FORMAT.into(),
                        engine: self.engine.into(),
                        key: key.clone(),
                        chart: chart.clone(),
                        duration_ms: *duration_ms,
                        steps: steps.clone(),
                    };
                    match self.push(signer, &verdict, deadline) {
                        Ok(()) => {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => eprintln!(
                            "warning: remote cache {}:{key}: cannot write the verdict of {chart}: {err:#}",
                            self.client.reference()
                        ),
                    }
                });
            }
        });
        let written = written.into_inner();
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).written += written;
        written
    }

    fn push(&self, signer: &PrivateKey, verdict: &Verdict, deadline: Instant) -> Result<()> {
        let layer = serde_json::to_vec(verdict)?;
        let digest = self.client.push_blob(&layer, deadline)?;
        let signature = signer.sign(&self.message(&verdict.key, &verdict.chart, &digest));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": oci::EMPTY_TYPE,
                "digest": oci::sha256_digest(oci::EMPTY_BLOB),
                "size": oci::EMPTY_BLOB.len()
            },
            // The layer's bytes also ride in its descriptor (`data`, OCI
            // image spec 1.1), so a hit costs one request, not two.
            "layers": [{
                "mediaType": LAYER_TYPE,
                "digest": digest,
                "size": layer.len(),
                "data": base64::engine::general_purpose::STANDARD.encode(&layer)
            }],
            "annotations": {
                ANNOTATION_KEY: verdict.key,
                ANNOTATION_CHART: verdict.chart,
                ANNOTATION_SIGNER: signer.public().to_string(),
                ANNOTATION_SIGNATURE: signature,
            }
        });
        self.client.put_manifest(&verdict.key, &serde_json::to_vec(&manifest)?, deadline)
    }
}

/// `cargo xtask cache keygen --out FILE`: a new private key in `out`
/// (0600, never over an existing file); returns the public key.
pub fn keygen(out: &std::path::Path) -> Result<String> {
    let key = PrivateKey::generate()?;
    key.write_new(out).map_err(|err| exit::UsageError(format!("--out: {err:#}")))?;
    Ok(key.public().to_string())
}

/// The verdicts the caches hold for `wanted` charts (`index -> (key,
/// chart)`): the local cache first, then the remote one for the rest. A
/// writer looks every chart up remotely, so that it knows which entries are
/// missing or bad and must be written. With `read` false (`--no-cache`)
/// nothing stored is used, and a writer looks nothing up: it writes all.
pub struct Answers {
    pub stored: BTreeMap<usize, (Vec<StepResult>, CacheSource)>,
    /// Charts the remote cache answered with a trusted entry.
    pub remote_hits: std::collections::BTreeSet<usize>,
}

pub fn answers(
    local: &Cache,
    remote: Option<&RemoteCache>,
    wanted: &BTreeMap<usize, (String, String)>,
    read: bool,
) -> Answers {
    let mut stored = BTreeMap::new();
    let mut remote_hits = std::collections::BTreeSet::new();
    if !read {
        return Answers { stored, remote_hits };
    }
    for (&index, (key, chart)) in wanted {
        if let Some(steps) = local.get::<Vec<StepResult>>(key, chart) {
            stored.insert(index, (steps, CacheSource::Local));
        }
    }
    if let Some(remote) = remote {
        let ask: Vec<(usize, (String, String))> = wanted
            .iter()
            .filter(|(index, _)| remote.writes() || !stored.contains_key(index))
            .map(|(&index, pair)| (index, pair.clone()))
            .collect();
        let pairs: Vec<(String, String)> = ask.iter().map(|(_, pair)| pair.clone()).collect();
        for (position, verdict) in remote.lookup(&pairs, local) {
            let index = ask[position].0;
            remote_hits.insert(index);
            stored.entry(index).or_insert((verdict.steps, CacheSource::Remote));
        }
    }
    Answers { stored, remote_hits }
}

/// What a writer shares: every passing verdict of this run (checked now,
/// or found in the local cache) that the remote cache did not answer with a
/// trusted entry, as the local cache stored it, with its measured duration.
pub fn to_publish(
    results: &BTreeMap<usize, ChartResult>,
    answers: &Answers,
    cache: &Cache,
) -> Vec<(String, String, Vec<StepResult>, u64)> {
    results
        .iter()
        .filter(|(index, r)| matches!(r.status, Status::Ok | Status::Cached) && !answers.remote_hits.contains(index))
        .filter_map(|(_, r)| {
            let key = r.cache_key.clone()?;
            let steps = cache.get::<Vec<StepResult>>(&key, &r.name)?;
            let duration = match r.status {
                Status::Ok => r.finished_ms.saturating_sub(r.started_ms),
                _ => steps.iter().map(|s| s.duration_ms).max().unwrap_or(0),
            };
            Some((key, r.name.clone(), steps, duration))
        })
        .collect()
}
