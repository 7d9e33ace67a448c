//! Name resolution without getaddrinfo or NSS.
//!
//! A static binary cannot load NSS modules, so names are resolved by hickory,
//! which reads `/etc/hosts` and `/etc/resolv.conf` itself. A rootfs without a
//! usable resolv.conf (no file, or no nameserver in it) still resolves what
//! `/etc/hosts` lists, instead of failing every lookup.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// reqwest's resolver: hickory, built on first use.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    inner: Arc<OnceLock<Result<Arc<TokioResolver>, String>>>,
}

fn build() -> Result<Arc<TokioResolver>, String> {
    let (config, mut options) = match hickory_resolver::system_conf::read_system_conf() {
        Ok(system) => system,
        Err(e) => {
            tracing::debug!(error = %e, "no usable /etc/resolv.conf: resolving from /etc/hosts only");
            (ResolverConfig::from_name_servers(Vec::new()), ResolverOpts::default())
        }
    };
    options.use_hosts_file = ResolveHosts::Always;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    *builder.options_mut() = options;
    builder.build().map(Arc::new).map_err(|e| format!("cannot set up name resolution: {e}"))
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.inner.get_or_init(build).clone();
        Box::pin(async move {
            let lookup = resolver?.lookup_ip(name.as_str()).await?;
            let addrs: Vec<SocketAddr> = lookup.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
