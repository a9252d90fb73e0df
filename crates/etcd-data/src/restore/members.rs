//! The new cluster's members: peer URLs as etcd normalises them, member and cluster IDs.
//!
//! member ID = first 8 bytes (BE) of SHA-1(sorted peer URLs concatenated || cluster token);
//! cluster ID = first 8 bytes (BE) of SHA-1(member IDs ascending, each as 8 BE bytes).

use sha1::{Digest, Sha1};

use crate::{Error, Result};

/// One member of the cluster being restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    /// Normalised, sorted.
    pub peer_urls: Vec<String>,
}

/// The cluster being restored: members in ascending ID order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: u64,
    pub members: Vec<Member>,
}

/// `scheme://host:port` as Go's `url.URL.String()` prints it for the URLs etcd accepts; anything
/// else (paths, queries, user info, other schemes) is refused, as etcd's `types.NewURLs` does.
pub fn normalize_url(url: &str) -> Result<String> {
    let bad = |reason: &str| Error::BadPeerUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("it must be scheme://host:port, without path, query or user"));
    }
    let port_ok = rest.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    if !port_ok {
        return Err(bad("it must name host:port"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// The member ID etcd derives from a member's peer URLs and the cluster token.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut hash = Sha1::new();
    for url in sorted_peer_urls {
        hash.update(url.as_bytes());
    }
    hash.update(token.as_bytes());
    first_u64(&hash.finalize())
}

/// The cluster ID etcd derives from the member IDs.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hash = Sha1::new();
    for id in ids {
        hash.update(id.to_be_bytes());
    }
    first_u64(&hash.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

impl Cluster {
    /// Parses `--initial-cluster` (`name=url,name=url,...`; a name may repeat for several URLs).
    pub fn from_initial_cluster(initial_cluster: &str, token: &str) -> Result<Self> {
        let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
        for part in initial_cluster
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, url) = part.split_once('=').ok_or_else(|| Error::BadInitialCluster {
                part: part.to_string(),
            })?;
            let url = normalize_url(url.trim())?;
            match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url),
                None => by_name.push((name.to_string(), vec![url])),
            }
        }
        if by_name.is_empty() {
            return Err(Error::BadInitialCluster {
                part: initial_cluster.to_string(),
            });
        }
        let mut members: Vec<Member> = by_name
            .into_iter()
            .map(|(name, mut peer_urls)| {
                peer_urls.sort();
                Member {
                    id: member_id(&peer_urls, token),
                    name,
                    peer_urls,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        if let Some(pair) = members.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(Error::DuplicateMember {
                name: pair[1].name.clone(),
            });
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(Self {
            id: cluster_id(&ids),
            members,
        })
    }

    /// The member called `name`, whose peer URLs must be `advertised` (etcd's bootstrap check).
    pub fn member(&self, name: &str, advertised: &[String]) -> Result<&Member> {
        let member = self
            .members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::NameNotInCluster {
                name: name.to_string(),
            })?;
        let mut advertised = advertised
            .iter()
            .map(|u| normalize_url(u))
            .collect::<Result<Vec<_>>>()?;
        advertised.sort();
        if advertised != member.peer_urls {
            return Err(Error::AdvertisedUrlsDiffer {
                name: name.to_string(),
                advertised: advertised.join(","),
                cluster: member.peer_urls.join(","),
            });
        }
        Ok(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors checked against etcd (spec §5.3).
    #[test]
    fn ids_match_etcd() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "tok");
        let b = member_id(&["http://127.0.0.1:2381".into()], "tok");
        assert_eq!(format!("{a:x}"), "71405583d3e2d5ce");
        assert_eq!(format!("{b:x}"), "321b4ccd5c32edea");
        assert_eq!(format!("{:x}", cluster_id(&[a, b])), "8d9fa1f3dd2c1d34");
        let c = member_id(&["http://127.0.0.1:23800".into()], "etcd-cluster");
        assert_eq!(format!("{c:x}"), "2e1259d415f2a040");
    }

    #[test]
    fn initial_cluster_is_parsed_and_checked() {
        let cluster =
            Cluster::from_initial_cluster("m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381", "tok")
                .unwrap();
        assert_eq!(format!("{:x}", cluster.id), "8d9fa1f3dd2c1d34");
        assert_eq!(cluster.members[0].name, "m2", "ascending IDs");
        assert!(cluster.member("m1", &["http://127.0.0.1:2380".into()]).is_ok());
        assert!(matches!(
            cluster.member("m1", &["http://127.0.0.1:2381".into()]),
            Err(Error::AdvertisedUrlsDiffer { .. })
        ));
        assert!(matches!(
            cluster.member("m3", &[]),
            Err(Error::NameNotInCluster { .. })
        ));
        for bad in [
            "m1",
            "m1=127.0.0.1:2380",
            "m1=http://h:1/path",
            "m1=ftp://h:1",
            "m1=http://h",
        ] {
            assert!(Cluster::from_initial_cluster(bad, "tok").is_err(), "{bad}");
        }
        assert!(matches!(
            Cluster::from_initial_cluster("a=http://h:1,b=http://h:1", "t"),
            Err(Error::DuplicateMember { .. })
        ));
    }
}
