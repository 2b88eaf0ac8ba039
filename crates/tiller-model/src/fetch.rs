//! Plain HTTP beside the model calls, on the same client, timeouts and egress policy: JSON from
//! an endpoint's other APIs (`/v1/models`, Ollama's `/api/*`, Hugging Face's file listing), and
//! file downloads that follow redirects (each target checked against the policy), resume with
//! `Range` from what an earlier try left, and take their name only once the sha256 matches.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::{self, Client};
use crate::{EgressPolicy, EndpointConfig, ModelError};

const MAX_REDIRECTS: usize = 5;

/// Fetches JSON and files from one site (and where it redirects), under an egress policy.
pub struct Fetcher {
    client: Client,
}

/// A file to fetch.
#[derive(Clone, Debug)]
pub struct Download {
    pub url: String,
    /// Where the file goes once whole and checked. Until then its bytes collect in
    /// `DEST.part`, which a broken transfer leaves for the next try to resume.
    pub dest: PathBuf,
    /// The sha256 the file must have, in hex; `None` takes it as it comes.
    pub sha256: Option<String>,
}

impl Fetcher {
    /// A client for `site`, which the policy must allow now; every connection is checked again.
    pub fn new(site: &str, egress: EgressPolicy) -> Result<Self, ModelError> {
        let config = EndpointConfig {
            base_url: site.into(),
            model: String::new(),
            api_key: None,
            context_length: 0,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            deadline: Duration::MAX,
            max_retries: 4,
            egress,
        };
        Ok(Fetcher { client: Client::new(config)? })
    }

    /// The JSON at `url`.
    pub fn json(&self, url: &str) -> Result<Value, ModelError> {
        self.client.json(url, None, &[])
    }

    /// Fetches `d.url` into `d.dest`, resuming from `d.dest`'s `.part` file; a transfer that
    /// breaks is resumed up to four times. `progress` gets the bytes held and the whole size when
    /// known. Returns the file's sha256. A file whose sha256 is not the one expected is removed.
    pub fn download(
        &self,
        d: &Download,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<String, ModelError> {
        let part = part_path(&d.dest);
        let file_error = |path: &Path, e: io::Error| ModelError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| file_error(&part, e))?;
        // What an earlier try left is hashed first, so that the file is read once.
        let mut state = Transfer { hasher: Sha256::new(), have: 0 };
        let mut earlier = File::open(&part).map_err(|e| file_error(&part, e))?;
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = earlier.read(&mut buf).map_err(|e| file_error(&part, e))?;
            if n == 0 {
                break;
            }
            state.hasher.update(&buf[..n]);
            state.have += n as u64;
        }
        let mut retries = 0;
        loop {
            match self.transfer(&d.url, &mut file, &mut state, progress) {
                Ok(()) => break,
                Err(ModelError::File { reason, .. }) => {
                    return Err(ModelError::File { path: part.display().to_string(), reason });
                }
                Err(e) if retries < self.client.config.max_retries && resumable(&e) => {
                    retries += 1;
                    std::thread::sleep(http::backoff(retries));
                }
                Err(e) => return Err(e),
            }
        }
        let got: String = state.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if let Some(want) = d.sha256.as_ref().filter(|want| !want.eq_ignore_ascii_case(&got)) {
            // Resuming from these bytes could never give the right file.
            let _ = std::fs::remove_file(&part);
            return Err(ModelError::Checksum { url: d.url.clone(), want: want.clone(), got });
        }
        file.sync_all().map_err(|e| file_error(&part, e))?;
        std::fs::rename(&part, &d.dest).map_err(|e| file_error(&d.dest, e))?;
        Ok(got)
    }

    /// One request for the bytes after those held, appended to `file` as they come.
    fn transfer(
        &self,
        url: &str,
        file: &mut File,
        state: &mut Transfer,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<(), ModelError> {
        let range = (state.have > 0).then(|| ("range", format!("bytes={}-", state.have)));
        let resp = match self.client.send(url, None, range.as_slice()) {
            // Nothing after the bytes held: the file is whole, and the checksum will say.
            Err(ModelError::Status { status: 416, .. }) if state.have > 0 => return Ok(()),
            other => other?,
        };
        let length = resp.header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let total = match content_range(&resp) {
            Some((start, total)) if resp.status() == 206 && start == state.have => total,
            // The whole file came instead of the rest: start again.
            _ => {
                file.set_len(0).map_err(|e| local(url, e))?;
                *state = Transfer { hasher: Sha256::new(), have: 0 };
                length
            }
        };
        let idle = self.client.config.idle_timeout;
        let mut reader = resp.into_reader();
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| http::io_error(&e, url, idle))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| local(url, e))?;
            state.hasher.update(&buf[..n]);
            state.have += n as u64;
            progress(state.have, total);
        }
        if total.is_some_and(|total| state.have < total) {
            return Err(ModelError::Truncated { endpoint: url.into() });
        }
        Ok(())
    }
}

/// The bytes of one download so far.
struct Transfer {
    hasher: Sha256,
    have: u64,
}

impl Client {
    /// GETs `url` (or POSTs `body` to it) and parses the JSON answer.
    pub(crate) fn json(
        &self,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Value, ModelError> {
        let resp = self.send(url, body, headers)?;
        let mut text = String::new();
        resp.into_reader()
            .take(http::MAX_EVENT as u64)
            .read_to_string(&mut text)
            .map_err(|e| http::io_error(&e, url, self.config.idle_timeout))?;
        http::parse(url, &text)
    }

    /// One request, following redirects, each target checked against the egress policy first.
    fn send(
        &self,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<ureq::Response, ModelError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            self.config.egress.check(&url)?;
            let mut req = match body {
                Some(_) => self.agent.post(&url),
                None => self.agent.get(&url),
            };
            for (name, value) in headers {
                req = req.set(name, value);
            }
            let sent = match body {
                Some(body) => {
                    req.set("content-type", "application/json").send_string(&body.to_string())
                }
                None => req.call(),
            };
            let resp = sent.map_err(|e| http::http_failure(e, &url, self.config.idle_timeout))?;
            if !(300..400).contains(&resp.status()) {
                return Ok(resp);
            }
            let next =
                resp.header("location").and_then(|to| url::Url::parse(&url).ok()?.join(to).ok());
            url = next
                .ok_or_else(|| ModelError::Malformed {
                    endpoint: url.clone(),
                    detail: format!("HTTP {} without a usable Location", resp.status()),
                })?
                .to_string();
        }
        Err(ModelError::Malformed { endpoint: url, detail: "too many redirects".into() })
    }
}

/// `DEST.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// The start and whole size of `Content-Range: bytes START-END/SIZE`.
fn content_range(resp: &ureq::Response) -> Option<(u64, Option<u64>)> {
    let value = resp.header("content-range")?.trim().strip_prefix("bytes ")?;
    let (span, size) = value.split_once('/')?;
    let start = span.split_once('-')?.0.trim().parse().ok()?;
    Some((start, size.trim().parse().ok()))
}

/// Whether a failed transfer is worth resuming.
fn resumable(e: &ModelError) -> bool {
    e.is_transient() || matches!(e, ModelError::Timeout { .. })
}

/// A failure to write the local file (its path is put in by the caller).
fn local(url: &str, e: io::Error) -> ModelError {
    ModelError::File { path: url.into(), reason: e.to_string() }
}
