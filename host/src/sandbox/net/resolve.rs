//! Host names looked up by the host, once per request, every address
//! checked against the ceiling: another name for a denied address is still
//! denied.

use super::super::ceiling::HostCeiling;
use std::net::IpAddr;
use std::pin::Pin;

/// How the host looks up a name: the system's resolver, or one a test
/// puts in its place (a resolver that answers differently each time is
/// what DNS rebinding looks like).
pub trait Resolve: Send + Sync {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The system's resolver.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Every address `host` stands for, looked up once and checked.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    ceiling: &HostCeiling,
    resolver: &dyn Resolve,
) -> Result<Vec<IpAddr>, String> {
    let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver
            .lookup(host, port)
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?,
    };
    if ips.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for ip in &ips {
        if let Some(why) = ceiling.denies_ip(*ip) {
            return Err(format!("{host} resolves to {ip}: {why}"));
        }
    }
    Ok(ips)
}
