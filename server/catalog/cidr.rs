//! IPv4 CIDR arithmetic for blueprint parameters: parsing, the private-range and prefix rules a
//! VPC block must follow, and carving a VPC block into equal subnets.
//!
//! Blueprints allocate subnets with `prefix + 4` blocks: sixteen of them, enough for three tiers
//! of up to three AZs each (each tier takes four consecutive blocks, so a tier is itself an aligned
//! `prefix + 2` block that NACL rules can name), and still at least a /28 for a /24 VPC.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network in CIDR notation with its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: u32,
    prefix: u8,
}

/// The RFC 1918 private ranges a VPC block must lie in.
const PRIVATE_RANGES: [(u32, u8, &str); 3] = [
    (0x0A00_0000, 8, "10.0.0.0/8"),
    (0xAC10_0000, 12, "172.16.0.0/12"),
    (0xC0A8_0000, 16, "192.168.0.0/16"),
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
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 => p,
            _ => {
                return Err(format!(
                    "'/{prefix}' is not a prefix length: use a number between 0 and 32"
                ));
            }
        };
        let addr = u32::from(ip);
        let cidr = Cidr { addr, prefix };
        if addr & !mask(prefix) != 0 {
            let net = Cidr {
                addr: addr & mask(prefix),
                prefix,
            };
            return Err(format!(
                "{s} has host bits set: the network address for /{prefix} is {net}"
            ));
        }
        Ok(cidr)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.addr & mask(self.prefix) == self.addr
    }

    /// The private range this block lies in, if any.
    pub fn private_range(&self) -> Option<&'static str> {
        PRIVATE_RANGES
            .iter()
            .find_map(|&(addr, prefix, name)| Cidr { addr, prefix }.contains(self).then_some(name))
    }

    /// Checks a block is usable as a VPC: private, with a prefix in `min..=max`.
    pub fn check_vpc(&self, min: u8, max: u8) -> Result<(), String> {
        if self.prefix < min {
            return Err(format!(
                "{self} is too large: use a prefix between /{min} and /{max}"
            ));
        }
        if self.prefix > max {
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
        let prefix = self.prefix + newbits;
        if prefix > 32 {
            return Err(format!("{self} cannot be split into /{prefix} blocks"));
        }
        if newbits < 32 && u64::from(index) >= 1u64 << newbits {
            return Err(format!(
                "{self} has only {} blocks of /{prefix}, not {}",
                1u64 << newbits,
                u64::from(index) + 1
            ));
        }
        let step = if prefix == 0 {
            0
        } else {
            1u32 << (32 - prefix)
        };
        Ok(Cidr {
            addr: self.addr + index * step,
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
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
        assert_eq!(c("10.10.0.0/16").private_range(), Some("10.0.0.0/8"));
        assert_eq!(c("172.31.0.0/16").private_range(), Some("172.16.0.0/12"));
        assert_eq!(c("172.32.0.0/16").private_range(), None);
        assert_eq!(c("192.168.10.0/24").private_range(), Some("192.168.0.0/16"));
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
        assert!(vpc.subnet(4, 16).is_err());
        assert_eq!(
            c("10.30.0.0/16").subnet(4, 5).map(|b| b.to_string()),
            Ok("10.30.80.0/20".into())
        );
    }
}
