//! IPv4 CIDR arithmetic for blueprint parameters: parsing, the private-range and prefix rules a
//! VPC block must follow, and carving a VPC block into equal subnets.
//!
//! Blueprints allocate subnets with `prefix + 4` blocks: sixteen of them, enough for three tiers
//! of up to three AZs each (each tier takes four consecutive blocks, so a tier is itself an aligned
//! `prefix + 2` block that NACL rules can name), and still at least a /28 for a /24 VPC.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// An IPv4 network in CIDR notation with its host bits zero (arithmetic by `ipnet`; this type
/// adds the messages people see and the rules a VPC block must follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(Ipv4Net);

/// The RFC 1918 private ranges a VPC block must lie in.
const PRIVATE_RANGES: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

impl Cidr {
    /// Parses `a.b.c.d/n`. The message says what is wrong and how to write it.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let Some((ip, prefix)) = s.split_once('/') else {
            return Err(format!(
                "'{s}' is not a CIDR block: write it as address/prefix, e.g. 10.10.0.0/16"
            ));
        };
        let ip: Ipv4Addr = ip.parse().map_err(|_| {
            format!("'{ip}' is not an IPv4 address: use four numbers 0-255, e.g. 10.10.0.0/16")
        })?;
        let net = prefix
            .parse::<u8>()
            .ok()
            .and_then(|p| Ipv4Net::new(ip, p).ok())
            .ok_or_else(|| {
                format!("'/{prefix}' is not a prefix length: use a number between 0 and 32")
            })?;
        if net.addr() != net.network() {
            return Err(format!(
                "{s} has host bits set: the network address for /{} is {}",
                net.prefix_len(),
                net.trunc()
            ));
        }
        Ok(Cidr(net))
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }

    /// The first and last address as numbers (for range queries).
    pub fn bounds(&self) -> (i64, i64) {
        (
            i64::from(u32::from(self.0.network())),
            i64::from(u32::from(self.0.broadcast())),
        )
    }

    /// The blocks of `prefix` inside this one, in address order (none when `prefix` is shorter).
    pub fn blocks(&self, prefix: u8) -> impl Iterator<Item = Cidr> {
        self.0.subnets(prefix).into_iter().flatten().map(Cidr)
    }

    /// Whether the two blocks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The private range this block lies in, if any.
    pub fn private_range(&self) -> Option<Cidr> {
        PRIVATE_RANGES
            .iter()
            .filter_map(|&(addr, prefix)| Ipv4Net::new(addr, prefix).ok().map(Cidr))
            .find(|range| range.contains(self))
    }

    /// Checks a block is usable as a VPC: private, with a prefix in `min..=max`.
    pub fn check_vpc(&self, min: u8, max: u8) -> Result<(), String> {
        if self.prefix() < min {
            return Err(format!(
                "{self} is too large: use a prefix between /{min} and /{max}"
            ));
        }
        if self.prefix() > max {
            return Err(format!(
                "{self} is too small: use a prefix between /{min} and /{max}"
            ));
        }
        if self.private_range().is_none() {
            return Err(format!(
                "{self} is not a private range: use a block inside 10.0.0.0/8, 172.16.0.0/12 or \
                 192.168.0.0/16"
            ));
        }
        Ok(())
    }

    /// The `index`-th block of prefix `self.prefix + newbits`, like Terraform's `cidrsubnet`.
    pub fn subnet(&self, newbits: u8, index: u32) -> Result<Cidr, String> {
        let prefix = self.prefix() + newbits;
        let blocks = self
            .0
            .subnets(prefix)
            .map_err(|_| format!("{self} cannot be split into /{prefix} blocks"))?;
        blocks.clone().nth(index as usize).map(Cidr).ok_or_else(|| {
            format!(
                "{self} has only {} blocks of /{prefix}, not {}",
                1u64 << newbits,
                u64::from(index) + 1
            )
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        match Cidr::parse(s) {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(c("10.10.0.0/16").to_string(), "10.10.0.0/16");
        assert_eq!(c(" 192.168.4.0/24 ").prefix(), 24);
    }

    #[test]
    fn rejects_malformed_and_host_bits() {
        assert!(Cidr::parse("10.10.0.0").is_err_and(|e| e.contains("address/prefix")));
        assert!(Cidr::parse("10.300.0.0/16").is_err_and(|e| e.contains("not an IPv4")));
        assert!(Cidr::parse("10.0.0.0/33").is_err_and(|e| e.contains("prefix length")));
        assert_eq!(
            Cidr::parse("10.10.1.0/16"),
            Err(
                "10.10.1.0/16 has host bits set: the network address for /16 is 10.10.0.0/16"
                    .into()
            )
        );
    }

    #[test]
    fn private_ranges_and_prefix_bounds() {
        let range = |s: &str| c(s).private_range().map(|r| r.to_string());
        assert_eq!(range("10.10.0.0/16").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(range("172.31.0.0/16").as_deref(), Some("172.16.0.0/12"));
        assert_eq!(range("172.32.0.0/16"), None);
        assert_eq!(range("192.168.10.0/24").as_deref(), Some("192.168.0.0/16"));
        assert_eq!(
            c("10.0.0.0/12").check_vpc(16, 24),
            Err("10.0.0.0/12 is too large: use a prefix between /16 and /24".into())
        );
        assert!(
            c("10.0.0.0/25")
                .check_vpc(16, 24)
                .is_err_and(|e| e.contains("too small"))
        );
        assert!(
            c("8.8.0.0/16")
                .check_vpc(16, 24)
                .is_err_and(|e| e.contains("not a private"))
        );
        assert!(c("192.168.0.0/24").check_vpc(16, 24).is_ok());
    }

    #[test]
    fn subnets_fit_three_tiers_of_three_azs_even_in_a_slash_24() {
        let vpc = c("192.168.7.0/24");
        let blocks: Vec<Cidr> = (0..12).filter_map(|i| vpc.subnet(4, i).ok()).collect();
        assert_eq!(blocks.len(), 12);
        assert_eq!(blocks[0].to_string(), "192.168.7.0/28");
        assert_eq!(blocks[11].to_string(), "192.168.7.176/28");
        assert!(blocks.iter().all(|b| vpc.contains(b)));
        // A tier's four blocks are exactly its aligned /26.
        let tier = vpc.subnet(2, 1).map(|t| t.to_string());
        assert_eq!(tier.as_deref(), Ok("192.168.7.64/26"));
        assert!(
            vpc.subnet(4, 16)
                .is_err_and(|e| e.contains("only 16 blocks of /28"))
        );
        assert!(
            vpc.subnet(9, 0)
                .is_err_and(|e| e.contains("cannot be split into /33"))
        );
        assert!(vpc.overlaps(&c("192.168.7.128/25")) && c("192.168.7.128/25").overlaps(&vpc));
        assert!(!vpc.overlaps(&c("192.168.8.0/24")));
        assert_eq!(
            c("10.30.0.0/16").subnet(4, 5).map(|b| b.to_string()),
            Ok("10.30.80.0/20".into())
        );
    }

    #[test]
    fn bounds_and_blocks_serve_the_address_plan() {
        assert_eq!(c("10.64.0.0/16").bounds(), (0x0A40_0000, 0x0A40_FFFF));
        assert_eq!(c("0.0.0.0/32").bounds(), (0, 0));
        let blocks: Vec<String> = c("10.64.0.0/14")
            .blocks(16)
            .map(|b| b.to_string())
            .collect();
        assert_eq!(
            blocks,
            [
                "10.64.0.0/16",
                "10.65.0.0/16",
                "10.66.0.0/16",
                "10.67.0.0/16"
            ]
        );
        assert_eq!(
            c("10.64.0.0/16").blocks(12).count(),
            0,
            "a shorter prefix has no blocks"
        );
        assert!(c("10.64.0.0/12").overlaps(&c("10.70.1.0/24")));
        assert!(!c("10.64.0.0/16").overlaps(&c("10.65.0.0/16")));
    }
}
