//! A small client of the OCI distribution API (manifests, blobs, tags) for
//! one repository of one registry: what the remote verdict cache needs, and
//! nothing of charts. Pushing and pulling charts stays with helm.
//!
//! Credentials are Helm's own: `helm registry login` writes them to
//! `$HELM_REGISTRY_CONFIG`, else `<helm config home>/registry/config.json`
//! (docker's config format). A registry that asks for them gets Basic auth,
//! or the bearer token its `WWW-Authenticate` realm hands out for those
//! credentials (or anonymously). Plain HTTP only for a registry on loopback
//! or when asked for; a loopback registry is never reached through a proxy.
//!
//! Every request has a deadline: the callers bound how long a registry that
//! does not answer may cost them.

use std::path::PathBuf;
use std::sync::Mutex;
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
        let name = match self.host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.host.rsplit_once(':').map_or(self.host.as_str(), |(name, _)| name),
        };
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
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
    credentials: Option<String>,
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
    /// The next page of a list: the `Link: <URL>; rel="next"` target.
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
        let credentials = helm_credentials(&reference.host);
        Client { reference, base, agent: config.build().into(), credentials, authorization: Mutex::new(None), push }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `GET /v2/`: whether the registry answers, settling how to
    /// authenticate (a bearer token for this repository) on the way.
    pub fn ping(&self, deadline: Instant) -> Result<()> {
        let answer = self.send("GET", &format!("{}/v2/", self.base), None, None, deadline, false)?;
        match answer.status {
            200..=299 => Ok(()),
            401 => {
                let challenge = answer.challenge.unwrap_or_default();
                let header = self.authorize(&challenge, deadline)?;
                *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(header);
                Ok(())
            }
            status => bail!("GET /v2/ answered {status}"),
        }
    }

    /// The manifest tagged `tag` and its digest, or `None` when there is none.
    pub fn manifest(&self, tag: &str, deadline: Instant) -> Result<Option<(Vec<u8>, String)>> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.reference.repository);
        let answer = self.send("GET", &url, None, Some(MANIFEST_TYPE), deadline, true)?;
        match answer.status {
            200 => {
                let digest = answer.digest.unwrap_or_else(|| sha256_digest(&answer.body));
                Ok(Some((answer.body, digest)))
            }
            404 => Ok(None),
            status => bail!("GET manifest {tag} answered {status}"),
        }
    }

    /// Every tag of the repository (`GET /v2/NAME/tags/list`, following
    /// the `Link` pages the registry hands out); none when it has no such
    /// repository.
    pub fn tags(&self, deadline: Instant) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = format!("{}/v2/{}/tags/list", self.base, self.reference.repository);
        let mut tags = Vec::new();
        loop {
            let answer = self.send("GET", &url, None, None, deadline, true)?;
            match answer.status {
                200 => {}
                404 => return Ok(tags),
                status => bail!("GET tags of {} answered {status}", self.reference),
            }
            let list: List = serde_json::from_slice(&answer.body)
                .with_context(|| format!("the tag list of {} is not JSON", self.reference))?;
            tags.extend(list.tags.unwrap_or_default());
            match answer.next.filter(|next| next.starts_with('/')) {
                Some(next) => url = format!("{}{next}", self.base),
                None => return Ok(tags),
            }
        }
    }

    /// A blob, checked against its digest.
    pub fn blob(&self, digest: &str, deadline: Instant) -> Result<Vec<u8>> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.reference.repository);
        let answer = self.send("GET", &url, None, None, deadline, true)?;
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
        let head = self.send("HEAD", &format!("{}/v2/{repo}/blobs/{digest}", self.base), None, None, deadline, true)?;
        if head.status == 200 {
            return Ok(digest);
        }
        let start =
            self.send("POST", &format!("{}/v2/{repo}/blobs/uploads/", self.base), Some(&[]), None, deadline, true)?;
        let location = match (start.status, start.location) {
            (202, Some(location)) => location,
            (status, _) => bail!("starting an upload answered {status}"),
        };
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let done = self.send("PUT", &url, Some(bytes), None, deadline, true)?;
        if done.status != 201 {
            bail!("uploading blob {digest} answered {}", done.status);
        }
        Ok(digest)
    }

    /// Tags `manifest` as `tag` (replacing whatever the tag pointed at).
    pub fn put_manifest(&self, tag: &str, manifest: &[u8], deadline: Instant) -> Result<()> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.reference.repository);
        let answer = self.send("PUT", &url, Some(manifest), Some(MANIFEST_TYPE), deadline, true)?;
        if answer.status != 201 {
            bail!("PUT manifest {tag} answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body).trim());
        }
        Ok(())
    }

    /// One request, finished by `deadline` whatever the registry does.
    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        deadline: Instant,
        authorized: bool,
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
        let next = header("Link").and_then(|link| {
            let (target, rel) = link.split_once(';')?;
            rel.contains("rel=\"next\"")
                .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        });
        let status = response.status().as_u16();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response.body_mut().with_config().limit(READ_LIMIT).read_to_vec().map_err(|err| anyhow::anyhow!("{err}"))?
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

    /// The `Authorization` header a `WWW-Authenticate` challenge asks for.
    fn authorize(&self, challenge: &str, deadline: Instant) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return match &self.credentials {
                Some(basic) => Ok(format!("Basic {basic}")),
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
        let mut url = format!("{realm}?scope=repository:{}:{actions}", self.reference.repository);
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            url.push_str(&format!("&service={service}"));
        }
        let mut request = self.agent.get(&url);
        if let Some(basic) = &self.credentials {
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let mut response =
            request.config().timeout_global(Some(remaining)).build().call().map_err(|err| anyhow::anyhow!("{err}"))?;
        if response.status() != 200 {
            bail!("the token service {realm} answered {}", response.status());
        }
        let body = response.body_mut().with_config().limit(READ_LIMIT).read_to_vec()?;
        let token: serde_json::Value = serde_json::from_slice(&body).context("the token service's answer")?;
        let token = token["token"].as_str().or(token["access_token"].as_str()).context("no token in the answer")?;
        Ok(format!("Bearer {token}"))
    }
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

/// `user:password` (base64) for `host` from Helm's registry config.
fn helm_credentials(host: &str) -> Option<String> {
    let text = std::fs::read(helm_registry_config()?).ok()?;
    credentials_for(&serde_json::from_slice(&text).ok()?, host)
}

/// docker's config format: `auths` keyed by host (or a URL of it), each
/// with `auth` (base64 `user:password`) or `username` and `password`.
fn credentials_for(config: &serde_json::Value, host: &str) -> Option<String> {
    let auths = config["auths"].as_object()?;
    let entry = auths.iter().find_map(|(key, value)| {
        let name = key.trim_start_matches("https://").trim_start_matches("http://");
        (name.split('/').next() == Some(host)).then_some(value)
    })?;
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        return Some(auth.to_string());
    }
    let (user, password) = (entry["username"].as_str()?, entry["password"].as_str()?);
    Some(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
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
            "harbor.example:8443": {"username": "robot$ci", "password": "s3cret"}
        }});
        assert_eq!(credentials_for(&config, "ghcr.io").as_deref(), Some("dXNlcjpwYXNz"));
        let harbor = credentials_for(&config, "harbor.example:8443").unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(harbor).unwrap(), b"robot$ci:s3cret");
        assert_eq!(credentials_for(&config, "quay.io"), None);
        let params = challenge_params(r#"realm="https://auth.example/token",service="registry.example",scope="x""#);
        assert_eq!(params[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(params[1], ("service".into(), "registry.example".into()));
    }
}
