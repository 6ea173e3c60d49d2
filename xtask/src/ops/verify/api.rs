//! Plain HTTPS to the API server, for what helm cannot do: create a
//! labelled namespace and its `default` ServiceAccount, and send a Pod with
//! `dryRun=All`. Bearer token and the API server's own CA file; nothing
//! skips certificate verification.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use crate::exec::cluster::{certificates, https_agent};

/// A client for one API server.
pub struct Api {
    agent: ureq::Agent,
    server: String,
    token: String,
}

/// What the API server answered.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `message` of a `Status` answer, else the body as it came.
    pub fn message(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.trim().to_string())
    }
}

impl Api {
    pub fn new(server: &str, ca_file: &Path, token: &str) -> Result<Api> {
        let pem = std::fs::read(ca_file).with_context(|| format!("cannot read {}", ca_file.display()))?;
        let agent = https_agent(certificates(&pem), Duration::from_secs(60));
        Ok(Api { agent, server: server.trim_end_matches('/').to_string(), token: token.to_string() })
    }

    /// From a kubeconfig whose current context authenticates with a bearer
    /// token and trusts a CA file (what ours writes); `None` for any other
    /// (client certificates, exec plugins: helm handles those, we do not).
    pub fn from_kubeconfig(path: &Path, context: Option<&str>) -> Option<Api> {
        let config: Value = yaml_serde::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        let context_name =
            context.map(str::to_string).or_else(|| config["current-context"].as_str().map(Into::into))?;
        let find = |list: &str, name: &str| {
            config[list].as_array()?.iter().find(|e| e["name"].as_str() == Some(name)).cloned()
        };
        let ctx = find("contexts", &context_name)?;
        let cluster = find("clusters", ctx["context"]["cluster"].as_str()?)?;
        let user = find("users", ctx["context"]["user"].as_str()?)?;
        let server = cluster["cluster"]["server"].as_str()?;
        let ca = cluster["cluster"]["certificate-authority"].as_str()?;
        let token = user["user"]["token"].as_str()?;
        let ca = path.parent().map_or_else(|| Path::new(ca).to_path_buf(), |dir| dir.join(ca));
        Api::new(server, &ca, token).ok()
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        let url = format!("{}{path}", self.server);
        let auth = format!("Bearer {}", self.token);
        let result = match body {
            Some(body) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            None if method == "DELETE" => self.agent.delete(&url).header("Authorization", &auth).call(),
            None => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = result.with_context(|| format!("{method} {path}"))?;
        Ok(Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        })
    }

    /// POSTs `body` to `path` (with its query, e.g. `?dryRun=All`).
    pub fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.send("POST", path, Some(body))
    }

    pub fn get(&self, path: &str) -> Result<Answer> {
        self.send("GET", path, None)
    }

    /// Creates a namespace that enforces (and warns and audits) `level`.
    pub fn create_namespace(&self, name: &str, level: &str) -> Result<Answer> {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/warn": level,
            "pod-security.kubernetes.io/audit": level,
        });
        let namespace =
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": labels } });
        self.send("POST", "/api/v1/namespaces", Some(&namespace))
    }

    /// The namespace's `default` ServiceAccount, which the controller-manager
    /// would create and ServiceAccount admission needs before any Pod.
    pub fn create_default_account(&self, namespace: &str) -> Result<Answer> {
        let account = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "default" } });
        self.send("POST", &format!("/api/v1/namespaces/{namespace}/serviceaccounts"), Some(&account))
    }

    /// Sends a Pod with `dryRun=All`: admitted (or refused) and never stored.
    pub fn dry_run_pod(&self, namespace: &str, pod: &Value) -> Result<Answer> {
        self.send("POST", &format!("/api/v1/namespaces/{namespace}/pods?dryRun=All"), Some(pod))
    }
}
