//! The router's HTTPS arguments, shared by `router` and `dev`: where TLS listens, where
//! certificates come from (an ACME directory, or a certificate and key given), and whether
//! plain HTTP is redirected.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct HttpsArgs {
    /// Also serve HTTPS (HTTP/1.1 and HTTP/2) here, with a certificate for every routed name:
    /// from `--acme-directory`, or `--tls-cert` for the names it covers.
    #[arg(long, value_name = "ADDRESS")]
    pub tls_listen: Option<SocketAddr>,
    /// Obtain and renew certificates from this ACME directory (HTTP-01 challenges, answered on
    /// the plain listener, which must be reachable on port 80 under every routed name).
    #[arg(long, value_name = "URL", requires = "tls_listen")]
    pub acme_directory: Option<String>,
    /// The ACME account's contact address.
    #[arg(long, value_name = "EMAIL", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// Trust this CA (PEM) for the ACME directory besides the web roots: a private directory,
    /// such as a test CA.
    #[arg(long, value_name = "FILE", requires = "acme_directory")]
    pub acme_ca_cert: Option<PathBuf>,
    /// Renew a certificate when less than this is left of it: `30d`, `720h`.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_renew_before)]
    pub acme_renew_before: std::time::Duration,
    /// A certificate chain (PEM), a wildcard `*.DOMAIN` for instance, served for every name it
    /// covers; names it does not cover get certificates from ACME, if configured.
    #[arg(long, value_name = "FILE", requires_all = ["tls_listen", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Answer plain HTTP with a redirect to HTTPS (ACME challenges are still answered).
    #[arg(long, requires = "tls_listen")]
    pub redirect_http: bool,
}

/// Whole days (`30d`) or a duration of the config's kind (`720h`), up to ten years: a
/// certificate's remaining life is compared with it.
fn parse_renew_before(text: &str) -> Result<std::time::Duration, String> {
    let days = text
        .trim()
        .strip_suffix('d')
        .and_then(|days| days.parse::<u64>().ok());
    days.map(|days| days.saturating_mul(86_400_000))
        .or_else(|| cj_spec::parse_duration_ms(text).filter(|_| !text.trim().is_empty()))
        .filter(|ms| *ms <= 10 * 366 * 86_400_000)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration of at most 10 years (30d, 720h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_windows_are_days_or_durations_up_to_ten_years() {
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(parse_renew_before("30d"), Ok(day * 30));
        assert_eq!(parse_renew_before("720h"), Ok(day * 30));
        assert_eq!(parse_renew_before("3650d"), Ok(day * 3650));
        for bad in ["", "d", "-1d", "4000d", "1y", "30 d"] {
            assert!(parse_renew_before(bad).is_err(), "{bad}");
        }
    }
}
