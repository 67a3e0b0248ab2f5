//! Separate hosts on one machine: a network namespace per host, joined by a bridge in the test's
//! own namespace (which can reach every host). Partitions are blackhole routes inside the hosts.
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A set of hosts `10.66.K.1 … 10.66.K.n`; the test process is `10.66.K.254`. Removed on drop.
pub(crate) struct Net {
    k: u32,
    hosts: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {} (network namespace tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

impl Net {
    /// Creates `hosts` namespaces on a fresh bridge.
    pub(crate) fn create(hosts: usize) -> Net {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let k = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let net = Net { k, hosts: 0 };
        // Leftovers of a killed earlier run with the same number would clash.
        net.remove(hosts);
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.66.{k}.254/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let mut net = net;
        for i in 0..hosts {
            let ns = net.ns(i);
            let veth = format!("skv{k}h{i}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.host(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            net.hosts = i + 1;
        }
        net
    }

    fn bridge(&self) -> String {
        format!("skbr{}", self.k)
    }

    /// The namespace of host `i`.
    pub(crate) fn ns(&self, i: usize) -> String {
        format!("skiff{}h{i}", self.k)
    }

    /// The address of host `i`.
    pub(crate) fn host(&self, i: usize) -> String {
        format!("10.66.{}.{}", self.k, i + 1)
    }

    /// Cuts host `i` off from every other host (both directions); the test still reaches it.
    pub(crate) fn isolate(&self, i: usize) {
        for j in (0..self.hosts).filter(|&j| j != i) {
            ip(&[
                "-n",
                &self.ns(i),
                "route",
                "add",
                "blackhole",
                &format!("{}/32", self.host(j)),
            ]);
            ip(&[
                "-n",
                &self.ns(j),
                "route",
                "add",
                "blackhole",
                &format!("{}/32", self.host(i)),
            ]);
        }
    }

    /// Cuts hosts `a` and `b` off from each other (both directions); both still reach the rest.
    pub(crate) fn cut(&self, a: usize, b: usize) {
        for (from, to) in [(a, b), (b, a)] {
            ip(&[
                "-n",
                &self.ns(from),
                "route",
                "add",
                "blackhole",
                &format!("{}/32", self.host(to)),
            ]);
        }
    }

    /// Undoes every [`Net::isolate`] and [`Net::cut`].
    pub(crate) fn heal(&self) {
        for i in 0..self.hosts {
            for j in (0..self.hosts).filter(|&j| j != i) {
                ip_quiet(&[
                    "-n",
                    &self.ns(i),
                    "route",
                    "del",
                    "blackhole",
                    &format!("{}/32", self.host(j)),
                ]);
            }
        }
    }

    fn remove(&self, hosts: usize) {
        for i in 0..hosts.max(self.hosts) {
            ip_quiet(&["netns", "del", &self.ns(i)]);
            ip_quiet(&["link", "del", &format!("skv{}h{i}", self.k)]);
        }
        ip_quiet(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove(self.hosts);
    }
}
