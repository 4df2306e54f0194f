//! A real gRPC server for the tests and benches of `init.wait_grpc` and
//! `rebound wait grpc://`: tonic's server with tonic-health's standard
//! `grpc.health.v1.Health` service, on a loopback listener the caller
//! binds, plaintext or TLS (a test CA, test_ca.rs). Used through
//! `#[path]` by rebound-init's tests and bench and by the binary's tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
pub use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[path = "test_ca.rs"]
mod test_ca;
pub use test_ca::TestCa;

/// A running gRPC health server; stopped when dropped.
pub struct GrpcServer {
    /// Where it listens.
    pub addr: SocketAddr,
    reporter: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
}

impl GrpcServer {
    /// Serves the health service on `listener` (TLS with `tls`'s server
    /// certificate if given). The whole server (`""`) is SERVING, as
    /// tonic-health starts it; services are unknown until [`Self::set`].
    /// Call inside a tokio runtime; the server runs as a task of it.
    pub async fn start(listener: std::net::TcpListener, tls: Option<&TestCa>) -> Self {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let (reporter, service) = tonic_health::server::health_reporter();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut builder = Server::builder();
        if let Some(ca) = tls {
            let identity = Identity::from_pem(&ca.cert_pem, &ca.key_pem);
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .expect("server TLS");
        }
        // TCP_NODELAY, as gRPC servers set it: without it the answer's
        // trailers wait for the client's delayed ACK (40 ms).
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            let _ = builder
                .serve_with_incoming_shutdown(service, incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        GrpcServer {
            addr,
            reporter,
            stop: Some(stop),
        }
    }

    /// Sets the health of `service` (`""`: the whole server).
    pub async fn set(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }

    /// The reporter, to set statuses from elsewhere.
    pub fn reporter(&self) -> HealthReporter {
        self.reporter.clone()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A gRPC server that answers every call UNIMPLEMENTED: one without the
/// health service. Runs until the runtime ends; returns where it listens.
pub async fn start_without_health(listener: std::net::TcpListener) -> SocketAddr {
    use std::task::{Context, Poll};

    use tonic::body::Body;
    use tonic::codegen::Service;
    use tonic::codegen::http::{Request, Response};

    #[derive(Clone)]
    struct Unimplemented;
    impl Service<Request<Body>> for Unimplemented {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Body>) -> Self::Future {
            std::future::ready(Ok(
                tonic::Status::unimplemented("no such service").into_http()
            ))
        }
    }

    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("local addr");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(Server::builder().serve_with_incoming(Unimplemented, TcpIncoming::from(listener)));
    addr
}
