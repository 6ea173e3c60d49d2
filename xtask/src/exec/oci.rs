//! A small client of the OCI distribution API (manifests, blobs, tags) for
//! one repository of one registry: what the remote verdict cache needs, and
//! nothing of charts. Pushing and pulling charts stays with helm.
//!
//! Credentials are Helm's own: `helm registry login` writes them to
//! `$HELM_REGISTRY_CONFIG`, else `<helm config home>/registry/config.json`
//! (docker's config format), and are read as docker, oras and helm read
//! them: the registry's entry of `credHelpers`, else `credsStore`, names a
//! credential helper (`docker-credential-<name> get`, the registry on stdin,
//! `{"Username", "Secret"}` out, a `<token>` user meaning an identity token),
//! else `auths` holds them. They are looked up only when a registry asks,
//! within the caller's deadline (a helper that does not answer in time is
//! killed). A registry that asks gets Basic auth, or the bearer token its
//! `WWW-Authenticate` realm hands out for those credentials (an identity
//! token through OAuth2's refresh-token grant), or anonymously. Plain HTTP only for a registry on loopback
//! or when asked for; a loopback registry is never reached through a proxy.
//!
//! Every request has a deadline: the callers bound how long a registry that
//! does not answer may cost them.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;

/// The media type of the manifests this client writes and reads.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The empty config blob of an artifact (OCI image spec 1.1).
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";

/// Largest manifest or blob read back: verdicts are a few kilobytes.
const READ_LIMIT: u64 = 4 * 1024 * 1024;
/// Largest blob read by [`Client::blob_up_to`]'s callers that fetch whole
/// chart archives (Helm itself refuses charts over 20 MiB by default).
pub const ARCHIVE_LIMIT: u64 = 64 * 1024 * 1024;

/// `oci://HOST[:PORT]/PATH`, checked against the distribution spec's grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repository: String,
}

impl Reference {
    pub fn parse(url: &str) -> Result<Reference, String> {
        let rest = url.strip_prefix("oci://").ok_or_else(|| format!("{url:?}: expected oci://HOST/PATH"))?;
        let (host, repository) =
            rest.trim_end_matches('/').split_once('/').ok_or_else(|| format!("{url:?}: expected oci://HOST/PATH"))?;
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(format!("{url:?}: {host:?} is not a registry host"));
        }
        if !repository.split('/').all(path_component) {
            return Err(format!(
                "{url:?}: {repository:?} is not a repository name (lowercase letters, digits, and . _ __ - between them, / between parts)"
            ));
        }
        Ok(Reference { host: host.to_string(), repository: repository.to_string() })
    }

    /// Whether the host is this machine: spoken to over plain HTTP, never
    /// through a proxy.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// Whether `HOST[:PORT]` is this machine (`localhost`, 127.0.0.0/8, `[::1]`).
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}/{}", self.host, self.repository)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one component of a repository name.
fn path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`: the distribution spec's tag grammar.
pub fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One repository of one registry.
pub struct Client {
    reference: Reference,
    base: String,
    agent: ureq::Agent,
    /// Looked up once, when the registry first asks for them.
    credentials: OnceLock<Result<Option<Credential>, String>>,
    /// The `Authorization` header once the registry said which it wants.
    authorization: Mutex<Option<String>>,
    push: bool,
}

/// What a request came back with.
struct Answer {
    status: u16,
    body: Vec<u8>,
    location: Option<String>,
    challenge: Option<String>,
    digest: Option<String>,
    /// `Link: <...>; rel="next"` of a paginated list.
    next: Option<String>,
}

impl Client {
    /// A client for `reference`; `push` asks for a token that may write;
    /// `parallel` requests may share its connections at once.
    pub fn new(reference: Reference, plain_http: bool, push: bool, parallel: usize) -> Client {
        let loopback = reference.is_loopback();
        let scheme = if plain_http || loopback { "http" } else { "https" };
        let base = format!("{scheme}://{}", reference.host);
        let mut config =
            ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections_per_host(parallel);
        if loopback {
            config = config.proxy(None);
        }
        Client {
            reference,
            base,
            agent: config.build().into(),
            credentials: OnceLock::new(),
            authorization: Mutex::new(None),
            push,
        }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `GET /v2/`: whether the registry answers, settling how to
    /// authenticate (a bearer token for this repository) on the way.
    pub fn ping(&self, deadline: Instant) -> Result<()> {
        let answer = self.send("GET", &format!("{}/v2/", self.base), None, None, deadline, false, READ_LIMIT)?;
        match answer.status {
            200..=299 => Ok(()),
            401 => {
                let challenge = answer.challenge.unwrap_or_default();
                let header = self.authorize(&challenge, deadline)?;
                *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(header);
                // Asked again with them, so refused credentials are one
                // warning here rather than every lookup silently missing.
                let again = self.send("GET", &format!("{}/v2/", self.base), None, None, deadline, true, READ_LIMIT)?;
                match again.status {
                    200..=299 => Ok(()),
                    status => bail!(
                        "GET /v2/ answered {status} with the credentials for {}: log in again (`helm registry login {}`) or check its credential helper",
                        self.reference.host,
                        self.reference.host
                    ),
                }
            }
            status => bail!("GET /v2/ answered {status}"),
        }
    }

    /// The manifest tagged `tag` and its digest, or `None` when there is none.
    pub fn manifest(&self, tag: &str, deadline: Instant) -> Result<Option<(Vec<u8>, String)>> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.reference.repository);
        let answer = self.send("GET", &url, None, Some(MANIFEST_TYPE), deadline, true, READ_LIMIT)?;
        match answer.status {
            200 => {
                let digest = answer.digest.unwrap_or_else(|| sha256_digest(&answer.body));
                Ok(Some((answer.body, digest)))
            }
            404 => Ok(None),
            status => bail!("GET manifest {tag} answered {status}"),
        }
    }

    /// Every tag of the repository (none when it does not exist), following
    /// the registry's pagination.
    pub fn tags(&self, deadline: Instant) -> Result<Vec<String>> {
        let first = format!("{}/v2/{}/tags/list?n=1000", self.base, self.reference.repository);
        self.list(first, "tags", deadline)
    }

    /// Every repository of the registry (`/v2/_catalog`), which hosted
    /// registries may refuse: an error then, for the caller to fall back.
    pub fn catalog(&self, deadline: Instant) -> Result<Vec<String>> {
        self.list(format!("{}/v2/_catalog?n=1000", self.base), "repositories", deadline)
    }

    /// The string array `field` of a paginated JSON list, page after page.
    fn list(&self, first: String, field: &str, deadline: Instant) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut url = Some(first);
        while let Some(page) = url.take() {
            let answer = self.send("GET", &page, None, None, deadline, true, READ_LIMIT)?;
            match answer.status {
                200 => {}
                404 if field == "tags" => return Ok(out),
                status => bail!("GET {} answered {status}", page.trim_start_matches(&self.base)),
            }
            let body: serde_json::Value = serde_json::from_slice(&answer.body)
                .with_context(|| format!("GET {}: not a JSON list", page.trim_start_matches(&self.base)))?;
            out.extend(body[field].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
            url = answer.next.map(|next| if next.starts_with('/') { format!("{}{next}", self.base) } else { next });
        }
        Ok(out)
    }

    /// A blob, checked against its digest.
    pub fn blob(&self, digest: &str, deadline: Instant) -> Result<Vec<u8>> {
        self.blob_up_to(digest, READ_LIMIT, deadline)
    }

    /// [`Client::blob`] for blobs up to `limit` bytes.
    pub fn blob_up_to(&self, digest: &str, limit: u64, deadline: Instant) -> Result<Vec<u8>> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.reference.repository);
        let answer = self.send("GET", &url, None, None, deadline, true, limit)?;
        if answer.status != 200 {
            bail!("GET blob {digest} answered {}", answer.status);
        }
        if sha256_digest(&answer.body) != digest {
            bail!("blob {digest}: the registry sent other bytes");
        }
        Ok(answer.body)
    }

    /// Uploads a blob unless the registry has it; returns its digest.
    pub fn push_blob(&self, bytes: &[u8], deadline: Instant) -> Result<String> {
        let digest = sha256_digest(bytes);
        let repo = &self.reference.repository;
        let head = self.send(
            "HEAD",
            &format!("{}/v2/{repo}/blobs/{digest}", self.base),
            None,
            None,
            deadline,
            true,
            READ_LIMIT,
        )?;
        if head.status == 200 {
            return Ok(digest);
        }
        let start = self.send(
            "POST",
            &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            Some(&[]),
            None,
            deadline,
            true,
            READ_LIMIT,
        )?;
        let location = match (start.status, start.location) {
            (202, Some(location)) => location,
            (status, _) => bail!("starting an upload answered {status}"),
        };
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let done = self.send("PUT", &url, Some(bytes), None, deadline, true, READ_LIMIT)?;
        if done.status != 201 {
            bail!("uploading blob {digest} answered {}", done.status);
        }
        Ok(digest)
    }

    /// Tags `manifest` as `tag` (replacing whatever the tag pointed at).
    pub fn put_manifest(&self, tag: &str, manifest: &[u8], deadline: Instant) -> Result<()> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.reference.repository);
        let answer = self.send("PUT", &url, Some(manifest), Some(MANIFEST_TYPE), deadline, true, READ_LIMIT)?;
        if answer.status != 201 {
            bail!("PUT manifest {tag} answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body).trim());
        }
        Ok(())
    }

    /// One request, finished by `deadline` whatever the registry does,
    /// reading at most `limit` bytes of the answer.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        deadline: Instant,
        authorized: bool,
        limit: u64,
    ) -> Result<Answer> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("no time left");
        }
        let request = ureq::http::Request::builder().method(method).uri(url);
        let request = match content_type {
            Some(kind) if body.is_some() => request.header("Content-Type", kind),
            Some(kind) => request.header("Accept", kind),
            None => request,
        };
        let authorization = authorized.then(|| self.authorization.lock().unwrap_or_else(|e| e.into_inner()).clone());
        let request = match authorization.flatten() {
            Some(header) => request.header("Authorization", header),
            None => request,
        };
        let mut response = match body {
            Some(bytes) => self.run(request.body(bytes.to_vec())?, remaining),
            None => self.run(request.body(())?, remaining),
        }?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (location, challenge, digest) =
            (header("Location"), header("WWW-Authenticate"), header("Docker-Content-Digest"));
        let next = header("Link").and_then(|link| next_link(&link));
        let status = response.status().as_u16();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response.body_mut().with_config().limit(limit).read_to_vec().map_err(|err| anyhow::anyhow!("{err}"))?
        };
        Ok(Answer { status, body, location, challenge, digest, next })
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: ureq::http::Request<S>,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .allow_non_standard_methods(true)
            .build();
        self.agent.run(request).map_err(|err| anyhow::anyhow!("{err}"))
    }

    /// The credentials for this registry, looked up on first use.
    fn credentials(&self, deadline: Instant) -> Result<Option<&Credential>> {
        let found =
            self.credentials.get_or_init(|| credentials(&self.reference.host, deadline).map_err(|e| format!("{e:#}")));
        found.as_ref().map(Option::as_ref).map_err(|err| anyhow::anyhow!("{err}"))
    }

    /// The `Authorization` header a `WWW-Authenticate` challenge asks for.
    fn authorize(&self, challenge: &str, deadline: Instant) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let credentials = self.credentials(deadline)?;
        if scheme.eq_ignore_ascii_case("basic") {
            return match credentials {
                Some(Credential::Basic(basic)) => Ok(format!("Basic {basic}")),
                Some(Credential::Identity(_)) => bail!(
                    "the registry wants a user and password, and the credential for {} is an identity token",
                    self.reference.host
                ),
                None => bail!("the registry wants a login: run `helm registry login {}`", self.reference.host),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            bail!("the registry asks for {scheme:?} authentication, which is not supported");
        }
        let params = challenge_params(params);
        let realm =
            params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).context("no realm in the challenge")?;
        let actions = if self.push { "pull,push" } else { "pull" };
        let scope = format!("repository:{}:{actions}", self.reference.repository);
        let service = params.iter().find(|(k, _)| k == "service").map(|(_, v)| v.as_str());
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let mut response = match credentials {
            // An identity token is a refresh token: OAuth2's grant, as docker does.
            Some(Credential::Identity(token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "robot-shop-xtask"),
                    ("scope", scope.as_str()),
                ];
                form.extend(service.map(|service| ("service", service)));
                self.agent.post(&realm).config().timeout_global(Some(remaining)).build().send_form(form)
            }
            user_or_anonymous => {
                let mut url = format!("{realm}?scope={scope}");
                if let Some(service) = service {
                    url.push_str(&format!("&service={service}"));
                }
                let mut request = self.agent.get(&url);
                if let Some(Credential::Basic(encoded)) = user_or_anonymous {
                    request = request.header("Authorization", format!("Basic {encoded}"));
                }
                request.config().timeout_global(Some(remaining)).build().call()
            }
        }
        .map_err(|err| anyhow::anyhow!("{err}"))?;
        if response.status() != 200 {
            bail!("the token service {realm} answered {}", response.status());
        }
        let body = response.body_mut().with_config().limit(READ_LIMIT).read_to_vec()?;
        let token: serde_json::Value = serde_json::from_slice(&body).context("the token service's answer")?;
        let token = token["token"].as_str().or(token["access_token"].as_str()).context("no token in the answer")?;
        Ok(format!("Bearer {token}"))
    }
}

/// The URL of `<URL>; rel="next"` in a `Link` header (RFC 5988), as the
/// distribution spec paginates lists.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// `realm="...",service="..."` as pairs.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, next)) => (value, next),
                None => (quoted, ""),
            },
            None => after.split_once(',').map_or((after, ""), |(v, n)| (v, n)),
        };
        out.push((key, value.to_string()));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::util::fs::sha256_hex(bytes))
}

/// Where Helm keeps `helm registry login`'s credentials.
fn helm_registry_config() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HELM_REGISTRY_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HELM_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()).map(|d| PathBuf::from(d).join("helm"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/helm")))?;
    Some(home.join("registry/config.json"))
}

/// What a registry is shown when it asks who we are.
#[derive(Clone, PartialEq, Eq)]
enum Credential {
    /// Base64 of `user:password`.
    Basic(String),
    /// An identity token (docker's `identitytoken`, a helper's `<token>` user).
    Identity(String),
}

/// Never the secret, whatever prints it.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Basic(_) => "Basic(hidden)",
            Credential::Identity(_) => "Identity(hidden)",
        })
    }
}

/// The credentials for `host` from Helm's registry config: its credential
/// helper's answer when one is named for it (or for every registry), else
/// its `auths` entry; `None` when there are none (ask anonymously).
fn credentials(host: &str, deadline: Instant) -> Result<Option<Credential>> {
    let Some(path) = helm_registry_config() else { return Ok(None) };
    let Ok(text) = std::fs::read(&path) else { return Ok(None) };
    let config: serde_json::Value = serde_json::from_slice(&text).map_err(|err| {
        anyhow::anyhow!("{}: not JSON ({err}); run `helm registry login {host}` again", path.display())
    })?;
    match helper_for(&config, host) {
        Some(helper) => from_helper(&helper, host, deadline)
            .with_context(|| format!("{} names the credential helper of {host}", path.display())),
        None => Ok(from_auths(&config, host)),
    }
}

/// The entry of a docker config map (`auths`, `credHelpers`) for `host`:
/// keyed by host, or by a URL of it.
fn entry_for<'c>(map: &'c serde_json::Value, host: &str) -> Option<&'c serde_json::Value> {
    map.as_object()?.iter().find_map(|(key, value)| {
        let name = key.trim_start_matches("https://").trim_start_matches("http://");
        (name.split('/').next() == Some(host)).then_some(value)
    })
}

/// `credHelpers` for this registry wins over `credsStore` for all, as in
/// docker's CLI.
fn helper_for(config: &serde_json::Value, host: &str) -> Option<String> {
    let named = |value: &serde_json::Value| value.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    entry_for(&config["credHelpers"], host).and_then(named).or_else(|| named(&config["credsStore"]))
}

/// `auths`: `auth` (base64 `user:password`), `username` and `password`, or
/// `identitytoken`.
fn from_auths(config: &serde_json::Value, host: &str) -> Option<Credential> {
    let entry = entry_for(&config["auths"], host)?;
    if let Some(token) = entry["identitytoken"].as_str().filter(|t| !t.is_empty()) {
        return Some(Credential::Identity(token.to_string()));
    }
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        return Some(Credential::Basic(auth.to_string()));
    }
    let (user, password) = (entry["username"].as_str()?, entry["password"].as_str()?);
    Some(basic(user, password))
}

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Asks `docker-credential-<helper> get` for `host`'s credentials, killing
/// it at `deadline`. Its answer is never shown: a message names the helper
/// and the registry, and quotes the helper only when it failed.
fn from_helper(helper: &str, host: &str, deadline: Instant) -> Result<Option<Credential>> {
    // The name becomes part of a program name: nothing that could leave PATH.
    if !helper.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) || helper.starts_with('.') {
        bail!("credential helper {helper:?} for {host}: not a helper name");
    }
    let program = format!("docker-credential-{helper}");
    let path = which::which(&program).map_err(|_| {
        anyhow::anyhow!("credential helper {program} for {host}: not found on PATH; install it or change the config")
    })?;
    let sh = xshell::Shell::new()?;
    let started = Instant::now();
    let finished = crate::exec::process::run_until(xshell::cmd!(sh, "{path} get"), host.as_bytes(), deadline)?
        .with_context(|| {
            format!(
                "credential helper {program} for {host}: no answer within {} ms; stopped",
                started.elapsed().as_millis()
            )
        })?;
    if !finished.success {
        let said = finished.combined();
        // The helpers' own words for "nothing stored for this registry".
        if said.contains("credentials not found") {
            return Ok(None);
        }
        let first: String = said.lines().next().unwrap_or_default().chars().take(200).collect();
        bail!(
            "credential helper {program} for {host} failed (exit {}): {first}",
            finished.code.map_or("signal".to_string(), |c| c.to_string())
        );
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(finished.stdout.trim()).map_err(|_| {
        anyhow::anyhow!(
            "credential helper {program} for {host}: its answer is not {{\"Username\": ..., \"Secret\": ...}}"
        )
    })?;
    Ok(match answer {
        Answer { secret, .. } if secret.is_empty() => None,
        Answer { username, secret } if username == "<token>" => Some(Credential::Identity(secret)),
        Answer { username, secret } => Some(basic(&username, &secret)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_the_distribution_grammar() {
        let r = Reference::parse("oci://ghcr.io/acme/xtask-cache").unwrap();
        assert_eq!((r.host.as_str(), r.repository.as_str()), ("ghcr.io", "acme/xtask-cache"));
        assert!(!r.is_loopback());
        assert!(Reference::parse("oci://127.0.0.1:5000/cache").unwrap().is_loopback());
        assert!(Reference::parse("oci://localhost:5000/a/b").unwrap().is_loopback());
        assert!(Reference::parse("oci://[::1]:5000/a").unwrap().is_loopback());
        for bad in [
            "https://ghcr.io/a",
            "oci://ghcr.io",
            "oci://ghcr.io/Acme",
            "oci://ghcr.io/a//b",
            "oci://h/a-",
            "oci://h/a..b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(is_tag(&"ab".repeat(32)));
        assert!(!is_tag(&"a".repeat(129)) && !is_tag("-x") && !is_tag("a:b") && !is_tag(""));
    }

    #[test]
    fn credentials_come_from_helms_config_by_host() {
        let config = serde_json::json!({"auths": {
            "https://ghcr.io": {"auth": "dXNlcjpwYXNz"},
            "harbor.example:8443": {"username": "robot$ci", "password": "s3cret"},
            "acr.example": {"identitytoken": "refresh-me"}
        }});
        assert_eq!(from_auths(&config, "ghcr.io"), Some(Credential::Basic("dXNlcjpwYXNz".into())));
        let Some(Credential::Basic(harbor)) = from_auths(&config, "harbor.example:8443") else { panic!("harbor") };
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(harbor).unwrap(), b"robot$ci:s3cret");
        assert_eq!(from_auths(&config, "acr.example"), Some(Credential::Identity("refresh-me".into())));
        assert_eq!(from_auths(&config, "quay.io"), None);
        assert_eq!(format!("{:?}", from_auths(&config, "ghcr.io")), "Some(Basic(hidden))");
        // A registry's own helper wins over the store for every registry.
        let helpers = serde_json::json!({"credsStore": "pass", "credHelpers": {"https://ghcr.io": "gh"}});
        assert_eq!(helper_for(&helpers, "ghcr.io").as_deref(), Some("gh"));
        assert_eq!(helper_for(&helpers, "quay.io").as_deref(), Some("pass"));
        assert_eq!(helper_for(&config, "ghcr.io"), None);
        let refused = from_helper("../../bin/sh", "ghcr.io", Instant::now() + Duration::from_secs(1)).unwrap_err();
        assert!(format!("{refused}").contains("not a helper name"), "{refused}");
        let params = challenge_params(r#"realm="https://auth.example/token",service="registry.example",scope="x""#);
        assert_eq!(params[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(params[1], ("service".into(), "registry.example".into()));
        assert_eq!(
            next_link(r#"</v2/charts/app/tags/list?last=1.0.0&n=1000>; rel="next""#).as_deref(),
            Some("/v2/charts/app/tags/list?last=1.0.0&n=1000")
        );
        assert_eq!(next_link(r#"<https://x/y>; rel="prev""#), None);
    }
}
