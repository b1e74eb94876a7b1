//! The one typed configuration tree. Precedence: defaults < config file < `STRATA_*`
//! environment variables < command-line flags.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_ingest::IngestConfig;
use strata_query::sql::SqlLimits;
use strata_storage::StorageConfig;

/// Where Strata listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// OTLP/gRPC listener (traces, metrics and logs services).
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listener (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`).
    pub otlp_http_addr: SocketAddr,
    /// HTTP API listener: remote write, query APIs, SQL, `/metrics`, probes.
    pub http_addr: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            otlp_grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9600)),
        }
    }
}

/// Query settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Limits of `POST /api/v1/sql`.
    pub sql: SqlLimits,
    /// The Prometheus query API (`/api/v1/query`, `/api/v1/query_range`, ...).
    pub prometheus: strata_query::prom::PromApiConfig,
    /// The Loki query API (`/loki/api/v1/query_range`, labels, series, ...).
    pub loki: strata_query::loki::LokiApiConfig,
    /// The Jaeger and Tempo trace APIs.
    pub traces: strata_query::traces::TraceApiConfig,
}

/// Strata's own logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `strata=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listeners.
    pub server: ServerConfig,
    /// Storage engine.
    pub storage: StorageConfig,
    /// Receivers, translation and input limits.
    pub ingest: IngestConfig,
    /// Query limits.
    pub query: QueryConfig,
    /// Strata's own logs.
    pub log: LogConfig,
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Checks the settings serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.storage.validate().map_err(anyhow::Error::msg)?;
        self.ingest.limits.validate().map_err(anyhow::Error::msg)?;
        self.query.loki.validate().map_err(anyhow::Error::msg)?;
        self.query.traces.validate().map_err(anyhow::Error::msg)?;
        self.ingest
            .span_metrics
            .validate()
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

/// Command-line flags; each also reads a `STRATA_*` environment variable.
#[derive(Debug, clap::Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: an observability backend for OpenTelemetry metrics, logs and traces.",
    long_about = "Strata takes in OTLP (gRPC and HTTP), Prometheus remote write and Loki push, keeps \
the data durably in Parquet, and serves it back over the Prometheus (PromQL), Loki (LogQL), \
Jaeger and Tempo (TraceQL) HTTP APIs and SQL. \
With no options it runs everything in one process with data in ./data.\n\n\
Settings come from the defaults, then the config file, then STRATA_* environment \
variables, then these flags."
)]
pub struct Cli {
    /// TOML config file (see deploy/strata.example.toml).
    #[arg(short, long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the WAL, catalog and Parquet files [default: ./data].
    #[arg(long, env = "STRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "STRATA_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "STRATA_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,
    /// HTTP API listen address (queries, SQL, remote write, /metrics) [default: 127.0.0.1:9600].
    #[arg(long, env = "STRATA_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `debug` [default: info].
    #[arg(long, env = "STRATA_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Cli {
    /// The effective configuration: defaults, then the file, then env/flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.storage.data_dir = d.clone();
        }
        if let Some(a) = self.otlp_grpc_addr {
            config.server.otlp_grpc_addr = a;
        }
        if let Some(a) = self.otlp_http_addr {
            config.server.otlp_http_addr = a;
        }
        if let Some(a) = self.http_addr {
            config.server.http_addr = a;
        }
        if let Some(l) = &self.log_level {
            config.log.level = l.clone();
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn example_config_is_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/strata.example.toml");
        let parsed = Config::from_file(std::path::Path::new(path)).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nhttp_addr = \"127.0.0.1:1000\"\n[storage]\ndata_dir = \"/x\"\n",
        )
        .expect("write");
        let cli = Cli::parse_from([
            "strata",
            "--config",
            file.to_str().expect("utf8"),
            "--data-dir",
            "/y",
        ]);
        let c = cli.resolve().expect("resolve");
        assert_eq!(c.storage.data_dir, PathBuf::from("/y"));
        assert_eq!(c.server.http_addr, SocketAddr::from(([127, 0, 0, 1], 1000)));
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<Config>("[server]\nbogus = 1\n").is_err());
    }
}
