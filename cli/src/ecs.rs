//! This gateway's own address on Amazon ECS, for the shard committer election: a Fargate task
//! definition cannot give each task its IP, so without `--advertise-url` a gateway whose
//! environment has the task metadata endpoint (`ECS_CONTAINER_METADATA_URI_V4`, set by ECS in
//! every container) asks it for the container's address and advertises `http://{ip}:{port}`.

use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

/// The environment variable ECS sets to the container's metadata endpoint (version 4).
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// The part of the container metadata this reads.
#[derive(Deserialize)]
struct Container {
    #[serde(rename = "Networks", default)]
    networks: Vec<Network>,
}

#[derive(Deserialize)]
struct Network {
    #[serde(rename = "IPv4Addresses", default)]
    ipv4: Vec<String>,
    #[serde(rename = "IPv6Addresses", default)]
    ipv6: Vec<String>,
}

/// The URL other gateways reach this one at, from the body of the container metadata
/// endpoint: the first IPv4 address of the container's first network (else its first IPv6
/// address), with `port`.
pub fn advertise_url(metadata: &[u8], port: u16) -> Result<String, String> {
    let c: Container = serde_json::from_slice(metadata)
        .map_err(|e| format!("the container metadata is not the JSON expected: {e}"))?;
    let network = c
        .networks
        .first()
        .ok_or("the container metadata lists no network")?;
    let ip = network
        .ipv4
        .first()
        .or(network.ipv6.first())
        .ok_or("the container's network has no IP address")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    if ip.is_unspecified() {
        return Err(format!("{ip} is not an address other gateways can reach"));
    }
    Ok(match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    })
}

/// GET the container metadata at `endpoint` (three tries, 2 s each) and build the URL.
pub async fn discover(endpoint: &str, port: u16) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        match http.get(endpoint).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(body) => return advertise_url(&body, port),
                Err(e) => last = format!("reading {endpoint}: {e}"),
            },
            Ok(r) => last = format!("{endpoint} answered {}", r.status()),
            Err(e) => last = format!("{endpoint}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::advertise_url;

    /// The container metadata of a Fargate task, as in the ECS documentation ("Task metadata
    /// endpoint version 4 examples"), trimmed.
    const FARGATE: &str = r#"{
        "DockerId": "cd189a933e5849daa93386466019ab50-2495160603",
        "Name": "curl",
        "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
        "Limits": {"CPU": 2},
        "Type": "NORMAL",
        "Networks": [{
            "NetworkMode": "awsvpc",
            "IPv4Addresses": ["192.0.2.3"],
            "AttachmentIndex": 0,
            "MACAddress": "0a:de:f6:10:51:e5",
            "IPv4SubnetCIDRBlock": "192.0.2.0/24",
            "DomainNameServers": ["192.0.2.2"],
            "PrivateDNSName": "ip-10-0-0-222.us-west-2.compute.internal",
            "SubnetGatewayIpv4Address": "192.0.2.0/24"
        }]
    }"#;

    #[test]
    fn the_first_ipv4_address_of_the_first_network_with_the_listen_port() {
        assert_eq!(
            advertise_url(FARGATE.as_bytes(), 8080).unwrap(),
            "http://192.0.2.3:8080"
        );
    }

    #[test]
    fn an_ipv6_only_network_is_bracketed() {
        let m = r#"{"Networks":[{"IPv6Addresses":["2001:db8::7"]}]}"#;
        assert_eq!(
            advertise_url(m.as_bytes(), 80).unwrap(),
            "http://[2001:db8::7]:80"
        );
    }

    #[test]
    fn metadata_without_a_usable_address_is_an_error() {
        for (body, want) in [
            ("not json", "not the JSON expected"),
            (r#"{"Name":"x"}"#, "no network"),
            (
                r#"{"Networks":[{"NetworkMode":"awsvpc"}]}"#,
                "no IP address",
            ),
            (
                r#"{"Networks":[{"IPv4Addresses":["ten.0.0.1"]}]}"#,
                "not an IP",
            ),
            (
                r#"{"Networks":[{"IPv4Addresses":["0.0.0.0"]}]}"#,
                "can reach",
            ),
        ] {
            let e = advertise_url(body.as_bytes(), 8080).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
