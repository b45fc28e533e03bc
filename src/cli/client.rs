//! The API as the command-line client calls it: one base URL, admin credentials (or none),
//! and the server's JSON errors turned into readable ones.

use std::path::Path;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::Connection;

pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

/// A secret read from a file: its first line, without surrounding whitespace.
fn secret_from(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret)
}

fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Client {
    fn new(conn: &Connection, credentials: Option<(String, String)>) -> anyhow::Result<Self> {
        let base = conn.url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--url {base:?}: expected http://HOST:PORT or https://HOST");
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .user_agent(concat!("scriptd-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base,
            credentials,
        })
    }

    /// A client with the admin credentials from the password file or the environment.
    pub fn admin(conn: &Connection) -> anyhow::Result<Self> {
        let password = match &conn.password_file {
            Some(path) => secret_from(path)?,
            None => env_secret("SCRIPTD_ADMIN_PASSWORD")
                .context("no admin password: set SCRIPTD_ADMIN_PASSWORD or --password-file FILE")?,
        };
        Self::new(conn, Some((conn.user.clone(), password)))
    }

    /// A client without credentials, for the trigger (which takes its token per request).
    pub fn anonymous(conn: &Connection) -> anyhow::Result<Self> {
        Self::new(conn, None)
    }

    /// A script's trigger token, when one is given (file or environment).
    pub fn trigger_token(conn: &Connection) -> anyhow::Result<Option<String>> {
        match &conn.token_file {
            Some(path) => secret_from(path).map(Some),
            None => Ok(env_secret("SCRIPTD_TOKEN")),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.credentials {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    /// Sends a request; an error answer becomes an error with the server's message.
    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        Self::checked(resp).await
    }

    /// The answer itself when it succeeded, else an error with the server's message.
    async fn checked(resp: Response) -> anyhow::Result<Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"));
        match status {
            StatusCode::UNAUTHORIZED => bail!("{message} (check the credentials)"),
            _ => bail!("{message} ({status})"),
        }
    }

    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let resp = self
            .send(self.request(Method::GET, path).query(query))
            .await?;
        Ok(resp.json().await?)
    }

    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut req = self.request(Method::POST, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        Ok(self.send(req).await?.json().await?)
    }

    /// A script by id or codeIdentifier.
    pub async fn script(&self, reference: &str) -> anyhow::Result<Value> {
        let by_id = self
            .request(Method::GET, &format!("/api/admin/scripts/{reference}"))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if by_id.status() != StatusCode::NOT_FOUND {
            return Ok(Self::checked(by_id).await?.json().await?);
        }
        let code = reference.to_ascii_lowercase();
        let scripts = self
            .get_json("/api/admin/scripts", &[("q", code.as_str())])
            .await?;
        let id = scripts
            .as_array()
            .and_then(|list| list.iter().find(|s| s["codeIdentifier"] == code.as_str()))
            .and_then(|s| s["id"].as_str())
            .with_context(|| format!("no script with the id or codeIdentifier {reference:?}"))?;
        // List entries leave out the body and the env: the whole script is read by its id.
        self.get_json(&format!("/api/admin/scripts/{id}"), &[])
            .await
    }

    /// Streams a run's stored log to `out` (or standard output).
    pub async fn download_log(&self, run_id: &str, out: Option<&Path>) -> anyhow::Result<()> {
        let resp = self
            .send(self.request(
                Method::GET,
                &format!("/api/admin/scripts/runs/{run_id}/log"),
            ))
            .await?;
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin> = match out {
            Some(path) => Box::new(
                tokio::fs::File::create(path)
                    .await
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => Box::new(tokio::io::stdout()),
        };
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            sink.write_all(&chunk?).await?;
        }
        sink.flush().await?;
        Ok(())
    }
}
