//! A webhook receiver on loopback: records every request and answers with
//! scripted status codes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    /// The answer once the script is played.
    then: Arc<AtomicU16>,
}

impl Receiver {
    /// Starts a receiver that answers the requests with `statuses` in turn,
    /// then 200 to every other one (see [`Receiver::answer`]).
    pub async fn start(statuses: &[u16]) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks/packit", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let then = Arc::new(AtomicU16::new(200));
        let (log, script, fallback) = (seen.clone(), statuses.to_vec(), then.clone());
        tokio::spawn(async move {
            let mut script = script.into_iter();
            while let Ok((stream, _)) = listener.accept().await {
                let status = script
                    .next()
                    .unwrap_or_else(|| fallback.load(Ordering::Relaxed));
                if let Ok(r) = answer(stream, status).await {
                    log.lock().unwrap_or_else(PoisonError::into_inner).push(r);
                }
            }
        });
        Ok(Self { url, seen, then })
    }

    /// Answers `status` to every request after the script.
    pub fn answer(&self, status: u16) {
        self.then.store(status, Ordering::Relaxed);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn answer(mut stream: TcpStream, status: u16) -> Result<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the request head ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    let reply =
        format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(reply.as_bytes()).await?;
    Ok(Received {
        method,
        path,
        headers,
        body: buf[head_end..head_end + length].to_vec(),
        status,
    })
}
