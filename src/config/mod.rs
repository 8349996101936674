//! Configuration: from the user's text to a validated [`model::Config`].
//!
//! Owns the whole front end: locating the source (`-config`, `CONTAINERPILOT`,
//! `CONTAINERBUDDY`), Go text/template rendering over the environment, JSON5
//! parsing, format detection (3.x vs 2.x/1.x), lenient decoding, validation and
//! the 2.x → 3.x translation. It must not start processes or open sockets:
//! every error is found here, before anything runs. Interfaces are not
//! resolved and TLS files are not read here (discovery does that at run
//! time), so a config's validity never depends on the host.
//!
//! ```text
//! locate → Source ─read→ text ─template::render→ rendered ─json5::parse→ tree
//!        ─detect→ v3::decode | v2::decode → Config (+ warnings)
//! ```

pub(crate) mod address;
pub(crate) mod advice;
pub(crate) mod decode;
pub(crate) mod duration;
pub(crate) mod error;
pub(crate) mod jobs;
pub(crate) mod json5;
pub(crate) mod locks;
pub(crate) mod model;
pub(crate) mod sections;
pub(crate) mod template;
pub(crate) mod v2;
pub(crate) mod v3;
pub(crate) mod words;

use std::ffi::OsString;
use std::path::PathBuf;

use serde_json::Value;

pub use error::Origin;
pub(crate) use error::{ConfigError, Snippet, TextPosition};
pub use model::{Config, Format};
pub use template::Env;

use decode::Object;

/// Where the configuration text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Inline(String),
}

impl Source {
    /// Reads a `-config` / `CONTAINERPILOT` value: an inline document when it
    /// starts with `{` (after whitespace), else a path with an optional
    /// `file://` prefix.
    pub(crate) fn from_value(value: &str) -> Source {
        if value.trim_start().starts_with('{') {
            return Source::Inline(value.to_string());
        }
        Source::File(PathBuf::from(
            value.strip_prefix("file://").unwrap_or(value),
        ))
    }

    pub(crate) fn origin(&self) -> Origin {
        match self {
            Source::File(path) => Origin::File(path.clone()),
            Source::Inline(_) => Origin::Inline,
        }
    }

    /// The unrendered text.
    pub(crate) fn read(&self) -> Result<String, ConfigError> {
        match self {
            Source::Inline(text) => Ok(text.clone()),
            Source::File(path) => std::fs::read(path)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// The configuration source: `flag` (from `-config`), else env
/// `CONTAINERPILOT`, else env `CONTAINERBUDDY` (1.x). Empty values count as
/// unset. A value that is not UTF-8 is read lossily: the file it names then
/// cannot be found, which is an error naming it, not a silent fallback.
pub(crate) fn locate(flag: Option<&str>) -> Option<Source> {
    let from_env = |name| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned());
    [
        flag.map(str::to_string),
        from_env("CONTAINERPILOT"),
        from_env("CONTAINERBUDDY"),
    ]
    .into_iter()
    .flatten()
    .find(|value| !value.is_empty())
    .map(|value| Source::from_value(&value))
}

/// The process environment as template data (values that are not UTF-8 are
/// converted lossily).
pub(crate) fn process_env() -> Env {
    crate::environment::template_data(&std::env::vars_os().collect())
}

/// Renders `text` as a Go template over `env`; errors name the line and column.
pub(crate) fn render_template(
    text: &str,
    origin: &Origin,
    env: &Env,
) -> Result<String, ConfigError> {
    template::render(text, env).map_err(|e| template_error(text, origin, e))
}

fn template_error(text: &str, origin: &Origin, error: template::TemplateError) -> ConfigError {
    let at = TextPosition::of_offset(text, error.offset);
    ConfigError::Template {
        origin: origin.clone(),
        at,
        message: error.message,
        snippet: Snippet::new(text, at),
    }
}

/// Checks the template of every `render` job [beyond] (functions, argument
/// counts, service queries, and that the configured catalog can answer its
/// catalog and KV calls), so `--check` and startup refuse what would fail at
/// the first render. A template that cannot be read at that moment is only
/// a warning: it is read again at each run, and may be written by then.
fn check_render_templates(config: &Config, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    for job in &config.jobs {
        let Some(render) = &job.render else { continue };
        let origin = Origin::File(render.template.clone());
        let text = match read_template(&render.template) {
            Ok(text) => text,
            Err(error) => {
                warnings.push(format!(
                    "job {:?}: cannot read the render template {} now ({error}); it is read again at each run",
                    job.name,
                    render.template.display()
                ));
                continue;
            }
        };
        let calls = template::check(&text).map_err(|e| template_error(&text, &origin, e))?;
        let unanswerable = |call: &template::DataCall| match (&config.consul, &config.etcd) {
            (_, Some(_)) => (call.name != "service")
                .then_some("etcd holds only service registrations: only `service` reads it"),
            (Some(_), None) => None,
            (None, None) => Some("neither consul nor etcd is configured"),
        };
        if let Some((call, why)) = calls.iter().find_map(|c| Some((c, unanswerable(c)?))) {
            let message = format!("{} reads the catalog, but {why}", call.name);
            let error = template::TemplateError {
                offset: call.offset,
                message,
            };
            return Err(template_error(&text, &origin, error));
        }
    }
    Ok(())
}

/// A render template's text, for the check. Only a regular file of at most
/// 16 MiB: a path such as /dev/stdin or /proc/kcore must not hang a check.
fn read_template(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    const LIMIT: u64 = 16 << 20;
    // Checked before opening: opening a FIFO would block.
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(LIMIT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > LIMIT {
        return Err(std::io::Error::other("larger than 16 MiB"));
    }
    Ok(text)
}

/// What `-template` prints: the source rendered over the process environment.
pub(crate) fn render_source(source: &Source, env: &Env) -> Result<String, ConfigError> {
    render_template(&source.read()?, &source.origin(), env)
}

/// Renders each APP argument as a template, just before exec (the engine
/// calls this with the environment the APP will get). An argument that is
/// not UTF-8 cannot hold a template: it passes through byte for byte.
pub fn render_args(args: &[OsString], env: &Env) -> Result<Vec<OsString>, ConfigError> {
    args.iter()
        .enumerate()
        .map(|(index, arg)| match arg.to_str() {
            Some(text) => render_template(text, &Origin::AppArgument(index), env).map(Into::into),
            None => Ok(arg.clone()),
        })
        .collect()
}

/// A validated configuration and the warnings found on the way (deprecated
/// keys, ignored settings, jobs that can never start).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Logs the configuration autopilot runs, at DEBUG, under the words
/// ContainerPilot used (`loaded config:`, `Loaded config:` for 2.x files):
/// users and ContainerPilot's own tests look for that line. Secrets stay
/// out of it: the model serializes the Consul token as `<redacted>`, and
/// what templates rendered from secret-looking variables is masked.
pub(crate) fn log_loaded(config: &Config) {
    let prefix = match config.format {
        Format::V3 => "loaded config",
        Format::V2 => "Loaded config",
    };
    match serde_json::to_string(config) {
        Ok(json) => tracing::debug!("{prefix}: {}", redact_secrets(json, &process_env())),
        Err(error) => tracing::debug!("{prefix} (cannot be shown: {error})"),
    }
}

/// Parts of a variable's name that say its value is a secret.
const SECRET_NAMES: [&str; 6] = ["PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH"];

/// `text` with the value of every variable whose name says it is a secret
/// (`DB_PASSWORD`, `CONSUL_HTTP_TOKEN`, `API_KEY`...) replaced by
/// `<redacted>`: a template may have rendered it anywhere in the file.
/// Values shorter than 4 characters are left alone (they would mask
/// ordinary words and numbers, and reveal little).
fn redact_secrets(mut text: String, env: &Env) -> String {
    for (name, value) in env {
        let upper = name.to_ascii_uppercase();
        if value.len() >= 4 && SECRET_NAMES.iter().any(|part| upper.contains(part)) {
            text = text.replace(value.as_str(), "<redacted>");
        }
    }
    text
}

/// Loads `source` with `env` as the template data.
pub(crate) fn load_with_env(
    source: &Source,
    app: Option<&[OsString]>,
    env: &Env,
) -> Result<Loaded, ConfigError> {
    load_str(&source.read()?, &source.origin(), app, env)
}

/// Renders, parses, detects the format of, validates and translates `text`.
pub fn load_str(
    text: &str,
    origin: &Origin,
    app: Option<&[OsString]>,
    env: &Env,
) -> Result<Loaded, ConfigError> {
    let rendered = render_template(text, origin, env)?;
    let tree = json5::parse(&rendered, origin, rendered != text)?;
    let app = app.filter(|argv| !argv.is_empty());
    let mut warnings = Vec::new();
    let format = detect(&tree)?;
    let top_keys: &[&'static str] = match format {
        Format::V3 => &v3::TOP_KEYS,
        Format::V2 => &v2::TOP_KEYS,
    };
    let root = Object::new(&tree, "", top_keys)?;
    if root.has("consul") && root.has("etcd") {
        return Err(ConfigError::invalid(
            "",
            "configure one discovery backend, consul or etcd, not both",
        ));
    }
    let parts = match format {
        Format::V3 => v3::decode(&root, app, &mut warnings)?,
        Format::V2 => v2::decode(&root, app, &mut warnings)?,
    };
    let config = Config {
        format,
        consul: root
            .get("consul")
            .map(|v| sections::consul(v, "consul"))
            .transpose()?
            .flatten(),
        etcd: root
            .get("etcd")
            .map(|v| sections::etcd(v, "etcd"))
            .transpose()?,
        logging: root
            .get("logging")
            .map(|v| sections::logging(v, "logging"))
            .transpose()?
            .unwrap_or_default(),
        jobs: parts.jobs,
        watches: parts.watches,
        kv_watches: parts.kv_watches,
        locks: parts.locks,
        control: Some(parts.control),
        telemetry: parts.telemetry,
    };
    check_render_templates(&config, &mut warnings)?;
    warnings.extend(advice::warnings(
        &config,
        env.get("PATH").map(String::as_str),
    ));
    Ok(Loaded { config, warnings })
}

/// What a format's front end decides; the sections both formats share
/// (`consul`, `etcd`, `logging`) are read by [`load_str`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parts {
    pub jobs: Vec<model::JobConfig>,
    pub watches: Vec<model::WatchConfig>,
    pub kv_watches: Vec<model::KvWatchConfig>,
    pub locks: Vec<model::LockConfig>,
    pub control: model::ControlConfig,
    pub telemetry: Option<model::TelemetryConfig>,
}

/// Keys only a 3.x config has.
const V3_MARKERS: [&str; 3] = ["jobs", "watches", "control"];
/// Keys only a 2.x/1.x config has (plus `telemetry.sensors`).
const V2_MARKERS: [&str; 8] = [
    "services",
    "backends",
    "preStart",
    "onStart",
    "preStop",
    "postStop",
    "coprocesses",
    "tasks",
];

/// Which format a document is written in. Keys both formats share
/// (`consul`, `etcd`, `logging`, `stopTimeout`, `telemetry` without
/// `sensors`) decide nothing; a document with only those is read as 3.x.
fn detect(tree: &Value) -> Result<Format, ConfigError> {
    let map = tree
        .as_object()
        .ok_or_else(|| ConfigError::invalid("", "the configuration must be an object ({ ... })"))?;
    let has = |key: &str| map.keys().find(|k| k.eq_ignore_ascii_case(key));
    let v3: Vec<&String> = V3_MARKERS.iter().filter_map(|k| has(k)).collect();
    let mut v2: Vec<&String> = V2_MARKERS.iter().filter_map(|k| has(k)).collect();
    let sensors = has("telemetry")
        .and_then(|k| map[k].as_object())
        .is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case("sensors")));
    let telemetry_sensors = "telemetry.sensors".to_string();
    if sensors {
        v2.push(&telemetry_sensors);
    }
    match (v3.is_empty(), v2.is_empty()) {
        (false, false) => Err(ConfigError::invalid(
            "",
            format!(
                "mixes ContainerPilot 3 keys ({}) with 2.x keys ({}): write one format or the other",
                join(&v3),
                join(&v2)
            ),
        )),
        (true, false) => Ok(Format::V2),
        _ => Ok(Format::V3),
    }
}

fn join(keys: &[&String]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sources_from_flag_values() {
        assert_eq!(
            Source::from_value("/etc/cp.json5"),
            Source::File("/etc/cp.json5".into())
        );
        assert_eq!(
            Source::from_value("file:///etc/cp.json"),
            Source::File("/etc/cp.json".into())
        );
        assert_eq!(
            Source::from_value("  {consul: 'c'}"),
            Source::Inline("  {consul: 'c'}".into())
        );
        assert_eq!(
            Source::Inline(String::new()).origin().to_string(),
            "inline config"
        );
    }

    #[test]
    fn format_detection() {
        assert_eq!(detect(&json!({"jobs": []})).unwrap(), Format::V3);
        assert_eq!(
            detect(&json!({"consul": "c", "stopTimeout": 5})).unwrap(),
            Format::V3
        );
        assert_eq!(detect(&json!({"Services": []})).unwrap(), Format::V2);
        assert_eq!(
            detect(&json!({"telemetry": {"sensors": []}})).unwrap(),
            Format::V2
        );
        assert_eq!(
            detect(&json!({"telemetry": {"metrics": []}})).unwrap(),
            Format::V3
        );
        let mixed = detect(&json!({"watches": [], "telemetry": {"sensors": []}}))
            .unwrap_err()
            .to_string();
        assert!(
            mixed.contains("(watches) with 2.x keys (telemetry.sensors)"),
            "{mixed}"
        );
    }

    #[test]
    fn secrets_rendered_into_the_config_are_masked_in_the_log() {
        let env: Env = [
            ("DB_PASSWORD", "hunter22"),
            ("API_KEY", "k3y-value"),
            ("PORT", "8080"),
            ("SHORT_TOKEN", "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text =
            r#"{"exec":["app","--password","hunter22","--key=k3y-value","-p","8080","abc"]}"#;
        assert_eq!(
            redact_secrets(text.to_string(), &env),
            r#"{"exec":["app","--password","<redacted>","--key=<redacted>","-p","8080","abc"]}"#
        );
    }

    #[test]
    fn app_arguments_render_with_their_position() {
        let env: Env = [("PORT".to_string(), "80".to_string())].into();
        let args = ["nginx", "-p", "{{ .PORT }}"].map(OsString::from);
        assert_eq!(render_args(&args, &env).unwrap(), ["nginx", "-p", "80"]);
        let error = render_args(&["x", "{{ nope }}"].map(OsString::from), &env)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "config error: APP argument 1:1:4: template: function \"nope\" not defined"
            ),
            "{error}"
        );
    }

    #[test]
    fn app_arguments_that_are_not_utf8_pass_through_unrendered() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(b"{{ .PORT }}\xff".to_vec());
        let rendered = render_args(std::slice::from_ref(&raw), &Env::new()).unwrap();
        assert_eq!(rendered, [raw]);
    }
}
