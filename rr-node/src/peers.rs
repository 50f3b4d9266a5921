//! `cluster.json` ([`ClusterFile`]): the replica set `rr-node localnet`
//! started, which clients read to know whom to trust.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::{replica_set_of, NodeError, Peer};

/// `cluster.json`: what `rr-node localnet` started, for the `rr` CLI
/// (`rr --node DIR/cluster.json`) and for people (which process is which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Replicas n.
    pub n: usize,
    /// Byzantine faults tolerated f.
    pub f: usize,
    /// Scheme of new records.
    pub scheme: String,
    /// Every replica, in replica order.
    pub replicas: Vec<ClusterMember>,
    /// The CA that issued the replicas' API certificates (PEM): clients
    /// trust it, and no other, for the `https://` API URLs. Absent for a
    /// cluster served over plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// One replica in `cluster.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Its number.
    pub replica: u16,
    /// Base URL of its HTTP API.
    pub api: String,
    /// Its replica-to-replica address.
    pub p2p: SocketAddr,
    /// Its ed25519 replica key, hex.
    pub public_key: String,
    /// Its X25519 sealing key, hex.
    pub sealing_key: String,
    /// Its process id while `localnet` runs it.
    pub pid: Option<u32>,
    /// Its configuration file (`rr-node run --config` restarts it).
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl ClusterMember {
    /// Its entry in a peers list: addresses and public keys.
    pub fn peer(&self) -> Peer {
        Peer {
            p2p: self.p2p,
            api: self.api.clone(),
            public_key: self.public_key.clone(),
            sealing_key: self.sealing_key.clone(),
        }
    }
}

impl ClusterFile {
    /// A client of replica `m`'s API: pinned to the file's CA if it has one.
    #[cfg(feature = "client")]
    pub fn api_client(&self, m: &ClusterMember) -> Result<crate::http::HttpClient, NodeError> {
        match &self.ca {
            Some(ca) => crate::http::HttpClient::with_ca(&m.api, ca),
            None => crate::http::HttpClient::new(&m.api),
        }
    }

    /// The replica set the file names: every replica's key, in order.
    pub fn replica_set(&self) -> Result<rr_core::cert::ReplicaSetInfo, NodeError> {
        replica_set_of(self.replicas.iter().map(ClusterMember::peer))
    }

    /// Reads and checks a `cluster.json`.
    pub fn read(path: &std::path::Path) -> Result<Self, NodeError> {
        let bytes = std::fs::read(path).map_err(|e| {
            NodeError::Setup(format!(
                "cannot read the cluster file {}: {e}",
                path.display()
            ))
        })?;
        let file: Self = serde_json::from_slice(&bytes).map_err(|e| {
            NodeError::Setup(format!(
                "{} is not a cluster file written by `rr-node localnet`: {e}",
                path.display()
            ))
        })?;
        if file.replicas.is_empty() || file.replicas.len() != file.n {
            return Err(NodeError::Setup(format!(
                "{} lists {} replicas but says n = {}",
                path.display(),
                file.replicas.len(),
                file.n
            )));
        }
        if file.f != (file.n - 1) / 3 {
            return Err(NodeError::Setup(format!(
                "{} says f = {} but n = {} replicas tolerate f = {} Byzantine ones ((n - 1) / 3); the file was edited or is damaged",
                path.display(),
                file.f,
                file.n,
                (file.n - 1) / 3
            )));
        }
        if file
            .replicas
            .iter()
            .enumerate()
            .any(|(i, m)| usize::from(m.replica) != i)
        {
            return Err(NodeError::Setup(format!(
                "{}: replicas must be listed in order 0, 1, 2, …",
                path.display()
            )));
        }
        Ok(file)
    }

    /// Writes it atomically (a temporary file, then a rename).
    pub fn write(&self, path: &std::path::Path) -> Result<(), NodeError> {
        let io =
            |e: std::io::Error| NodeError::Setup(format!("cannot write {}: {e}", path.display()));
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        serde_json::to_writer_pretty(&mut tmp, self).map_err(|e| io(std::io::Error::other(e)))?;
        use std::io::Write;
        tmp.write_all(b"\n").map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize, f: usize) -> ClusterFile {
        ClusterFile {
            n,
            f,
            scheme: "umbral".into(),
            replicas: (0..n)
                .map(|i| ClusterMember {
                    replica: i as u16,
                    api: format!("http://127.0.0.1:{}", 7800 + i),
                    p2p: format!("127.0.0.1:{}", 7900 + i).parse().unwrap(),
                    public_key: hex::encode([i as u8 + 1; 32]),
                    sealing_key: hex::encode([i as u8 + 50; 32]),
                    pid: None,
                    config: PathBuf::from(format!("replica-{i}.toml")),
                    log: PathBuf::from(format!("replica-{i}.log")),
                })
                .collect(),
            ca: None,
        }
    }

    fn read_back(f: &ClusterFile) -> Result<ClusterFile, NodeError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        std::fs::write(&path, serde_json::to_vec(f).unwrap()).unwrap();
        ClusterFile::read(&path)
    }

    #[test]
    fn a_file_whose_f_does_not_follow_from_n_is_refused() {
        assert_eq!(read_back(&file(4, 1)).unwrap(), file(4, 1));
        assert_eq!(read_back(&file(7, 2)).unwrap(), file(7, 2));
        for (n, f) in [(4, 0), (4, 2), (7, 1)] {
            let err = read_back(&file(n, f)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("says f = {f} but n = {n} replicas tolerate")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_file_whose_n_or_order_is_wrong_is_refused() {
        let mut wrong_n = file(4, 1);
        wrong_n.n = 5;
        let err = read_back(&wrong_n).unwrap_err().to_string();
        assert!(err.contains("lists 4 replicas but says n = 5"), "{err}");
        let mut shuffled = file(4, 1);
        shuffled.replicas.swap(1, 2);
        let err = read_back(&shuffled).unwrap_err().to_string();
        assert!(err.contains("must be listed in order"), "{err}");
    }
}
