//! Getting a model into the models folder: `hf:ORG/REPO[/FILE.gguf]` from a Hugging Face hub
//! (`HF_ENDPOINT`, else huggingface.co), or a URL. The hub's file listing gives the file's
//! sha256 (its Git LFS object id), which the download must match before it takes its name;
//! the model is then `--model NAME`, NAME being the file's name without `.gguf`.

use std::path::Path;

use tiller_model::{Download, Fetcher};

use crate::LlamaError;

/// Where the hub is when `HF_ENDPOINT` does not say.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// The quantisation taken from a repository that has several and none was named.
const PREFERRED: &str = "q4_k_m";

/// What to pull.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A repository on the hub, and maybe one file in it.
    Hub {
        repo: String,
        file: Option<String>,
    },
    Url(String),
}

impl Source {
    /// `hf:ORG/REPO`, `hf:ORG/REPO/FILE.gguf`, or an http(s) URL of a `.gguf` file.
    pub fn parse(text: &str) -> Result<Source, LlamaError> {
        if let Some(rest) = text.strip_prefix("hf:") {
            let mut parts = rest.splitn(3, '/');
            let (org, repo, file) = (parts.next(), parts.next(), parts.next());
            return match (org, repo) {
                (Some(org), Some(repo)) if !org.is_empty() && !repo.is_empty() => Ok(Source::Hub {
                    repo: format!("{org}/{repo}"),
                    file: file.filter(|f| !f.is_empty()).map(str::to_string),
                }),
                _ => Err(LlamaError::Pull(format!("`{text}` is not hf:ORG/REPO[/FILE.gguf]"))),
            };
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Source::Url(text.to_string()));
        }
        Err(LlamaError::Pull(format!(
            "`{text}` is neither hf:ORG/REPO[/FILE.gguf] nor an http(s) URL"
        )))
    }
}

/// A download planned: where from, where to, the checksum, and the name it answers to.
#[derive(Clone, Debug)]
pub struct Pull {
    pub name: String,
    pub download: Download,
    /// Where the expected sha256 came from, when there is one.
    pub checksum_from: Option<&'static str>,
}

/// Finds the file `source` means (asking the hub which files the repository has) and plans its
/// download into `dir`. A `sha256` given overrides the hub's.
pub fn plan(
    fetcher: &Fetcher,
    hub: &str,
    source: &Source,
    dir: &Path,
    sha256: Option<String>,
) -> Result<Pull, LlamaError> {
    let hub = hub.trim_end_matches('/');
    let (url, file, published) = match source {
        Source::Url(url) => {
            let path = url.split(['?', '#']).next().unwrap_or_default();
            (url.clone(), path.rsplit('/').next().unwrap_or_default().to_string(), None)
        }
        Source::Hub { repo, file } => {
            let listing =
                fetcher.json(&format!("{hub}/api/models/{repo}/tree/main?recursive=true"))?;
            let (path, sha) = choose(repo, &listing, file.as_deref())?;
            (format!("{hub}/{repo}/resolve/main/{path}"), path, sha)
        }
    };
    let base = file.rsplit('/').next().unwrap_or_default();
    let name = base.strip_suffix(".gguf").filter(|n| !n.is_empty() && !n.starts_with('.'));
    let name =
        name.ok_or_else(|| LlamaError::Pull(format!("`{url}` does not name a .gguf file")))?;
    let checksum_from = match (&sha256, &published) {
        (Some(_), _) => Some("--sha256"),
        (None, Some(_)) => Some("the hub's listing"),
        (None, None) => None,
    };
    let download =
        Download { url, dest: dir.join(format!("{name}.gguf")), sha256: sha256.or(published) };
    Ok(Pull { name: name.to_string(), download, checksum_from })
}

/// The `.gguf` file of a repository's listing to pull, and its published sha256: the one
/// named, or the only one, or the Q4_K_M one; otherwise the error lists them.
fn choose(
    repo: &str,
    listing: &serde_json::Value,
    wanted: Option<&str>,
) -> Result<(String, Option<String>), LlamaError> {
    let files: Vec<(&str, Option<&str>)> = listing
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["type"] == "file")
        .filter_map(|entry| Some((entry["path"].as_str()?, entry["lfs"]["oid"].as_str())))
        .filter(|(path, _)| path.ends_with(".gguf"))
        .collect();
    let names = || files.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ");
    let found = match wanted {
        Some(wanted) => files.iter().find(|(path, _)| *path == wanted).ok_or_else(|| {
            LlamaError::Pull(format!("{repo} has no file {wanted}; its .gguf files: {}", names()))
        })?,
        None if files.len() == 1 => &files[0],
        None if files.is_empty() => {
            return Err(LlamaError::Pull(format!("{repo} has no .gguf file")));
        }
        None => files
            .iter()
            .find(|(path, _)| path.to_ascii_lowercase().contains(PREFERRED))
            .ok_or_else(|| {
                LlamaError::Pull(format!(
                    "{repo} has several .gguf files and none is Q4_K_M; name one as \
                     hf:{repo}/FILE: {}",
                    names()
                ))
            })?,
    };
    Ok((found.0.to_string(), found.1.map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_bad_ones_say_the_forms() {
        let hub = |repo: &str, file: Option<&str>| Source::Hub {
            repo: repo.into(),
            file: file.map(str::to_string),
        };
        assert_eq!(Source::parse("hf:a/b").unwrap(), hub("a/b", None));
        assert_eq!(Source::parse("hf:a/b/x/y.gguf").unwrap(), hub("a/b", Some("x/y.gguf")));
        assert!(matches!(Source::parse("https://h/m.gguf").unwrap(), Source::Url(_)));
        for bad in ["hf:a", "hf:/b", "a/b", "ftp://h/m.gguf"] {
            let err = Source::parse(bad).unwrap_err().to_string();
            assert!(err.contains("hf:ORG/REPO"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_file_is_the_one_named_the_only_one_or_q4_k_m() {
        let entry = |path: &str| serde_json::json!({"type": "file", "path": path, "lfs": {"oid": format!("sha-{path}")}});
        let two =
            serde_json::json!([entry("m-Q8_0.gguf"), entry("m-Q4_K_M.gguf"), entry("README.md")]);
        let (path, sha) = choose("o/r", &two, None).unwrap();
        assert_eq!((path.as_str(), sha.as_deref()), ("m-Q4_K_M.gguf", Some("sha-m-Q4_K_M.gguf")));
        assert_eq!(choose("o/r", &two, Some("m-Q8_0.gguf")).unwrap().0, "m-Q8_0.gguf");
        let err = choose("o/r", &two, Some("m.gguf")).unwrap_err().to_string();
        assert!(err.contains("m-Q8_0.gguf, m-Q4_K_M.gguf"), "{err}");
        let other = serde_json::json!([entry("a-Q8_0.gguf"), entry("a-F16.gguf")]);
        let err = choose("o/r", &other, None).unwrap_err().to_string();
        assert!(err.contains("hf:o/r/FILE: a-Q8_0.gguf, a-F16.gguf"), "{err}");
        let one = serde_json::json!([entry("only.gguf")]);
        assert_eq!(choose("o/r", &one, None).unwrap().0, "only.gguf");
        assert!(choose("o/r", &serde_json::json!([]), None).is_err());
    }
}
