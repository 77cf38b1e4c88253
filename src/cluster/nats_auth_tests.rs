//! `cluster.nats_url` credentials: split from the URL, then sent in CONNECT to a private
//! `nats-server` that requires them (user/password, then a token); a refused connect's error
//! shows the URL masked.

use std::time::{Duration, Instant};

use super::{split, NatsCredentials};
use crate::cluster::{Cluster, ClusterError};
use crate::config::ClusterConfig;

#[test]
fn credentials_come_out_of_the_url_percent_decoded() {
    let t = split("nats://a%40b:p%3Ass@10.0.0.5:4222").unwrap();
    assert_eq!(t.url, "nats://10.0.0.5:4222");
    assert_eq!(
        t.credentials,
        NatsCredentials::UserPassword {
            user: "a@b".into(),
            password: "p:ss".into()
        }
    );
    let t = split("nats://s3cr%2Ft@nats.example").unwrap();
    assert_eq!(t.url, "nats://nats.example");
    assert_eq!(t.credentials, NatsCredentials::Token("s3cr/t".into()));
    let t = split("nats://10.0.0.5:4222").unwrap();
    assert_eq!(
        (t.url.as_str(), t.credentials),
        ("nats://10.0.0.5:4222", NatsCredentials::None)
    );
    assert!(split("nats://a:%ff@h").is_err(), "not UTF-8");
    // Several servers, as async-nats takes them: the credentials apply to all.
    let t = split("nats://u:p@n1:4222, nats://n2:4222").unwrap();
    assert_eq!(t.url, "nats://n1:4222,nats://n2:4222");
    assert!(matches!(
        t.credentials,
        NatsCredentials::UserPassword { .. }
    ));
    assert!(split("nats://u:p@n1:4222,nats://v:q@n2:4222").is_err());
    // Debug never shows the secret.
    let shown = format!("{:?}", split("nats://u:pw-77@h").unwrap());
    assert!(
        shown.contains("\"u\"") && !shown.contains("pw-77"),
        "{shown}"
    );
    assert!(!format!("{:?}", split("nats://tok-88@h").unwrap()).contains("tok-88"));
}

/// A private `nats-server` on a free port with `auth` arguments, killed on drop.
struct Server(std::process::Child, u16);

impl Server {
    async fn start(auth: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(auth)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(nats_url: String) -> Result<Cluster, ClusterError> {
    Cluster::connect(&ClusterConfig {
        node_id: format!("auth-{}", uuid::Uuid::new_v4().simple()),
        nats_url,
        ..ClusterConfig::default()
    })
    .await
}

/// A request/reply round trip proves the server accepted the connection.
async fn round_trip(cluster: &Cluster) {
    let mut sub = cluster.nats.subscribe("auth.echo").await.unwrap();
    cluster
        .nats
        .publish("auth.echo", "hi".into())
        .await
        .unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut sub),
    )
    .await
    .expect("the message comes back")
    .unwrap();
    assert_eq!(&got.payload[..], b"hi");
}

#[actix_rt::test]
async fn the_url_credentials_reach_a_server_that_requires_them() {
    let server = Server::start(&["--user", "a", "--pass", "b-secret-41"]).await;
    let port = server.1;
    let cluster = connect(format!("nats://a:b-secret-41@127.0.0.1:{port}"))
        .await
        .expect("user and password from the URL");
    round_trip(&cluster).await;
    // The same server refuses a wrong password, and the error masks the URL's secrets.
    let e = connect(format!("nats://a:wrong-pw-93@127.0.0.1:{port}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("wrong-pw-93"), "{e}");
    assert!(
        e.contains(&format!("nats://********:********@127.0.0.1:{port}")),
        "{e}"
    );
    // Without credentials: refused too (the server does require them).
    assert!(connect(format!("nats://127.0.0.1:{port}")).await.is_err());
}

#[actix_rt::test]
async fn a_lone_user_part_is_the_token() {
    let server = Server::start(&["--auth", "tok-secret-52"]).await;
    let port = server.1;
    let cluster = connect(format!("nats://tok-secret-52@127.0.0.1:{port}"))
        .await
        .expect("token from the URL");
    round_trip(&cluster).await;
    let e = connect(format!("nats://tok-wrong-64@127.0.0.1:{port}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("tok-wrong-64"), "{e}");
    assert!(e.contains("nats://********@127.0.0.1"), "{e}");
}
