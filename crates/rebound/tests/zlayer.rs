//! ZLayer deployment files as ZLayer writes them: `errors.on_panic` is
//! accepted (checked, then left to the container runtime), and a service
//! without `init` runs its workload at once.

mod support;

use support::{Cli, write_file};

const DEPLOYMENT: &str = "\
version: v1
deployment: shop
services:
  api:
    image: { name: shop/api }
    init:
      steps:
        - { id: ready, uses: init.run, with: { command: [\"true\"] } }
    errors:
      on_init_failure: { action: fail }
      on_panic: { action: isolate }
  cache:
    image: { name: shop/cache }
";

#[test]
fn on_panic_is_accepted_and_a_typo_in_it_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(dir.path(), "shop.yaml", DEPLOYMENT);
    Cli::new()
        .args(["init".as_ref(), "--check".as_ref(), spec.as_os_str()])
        .args(["--service", "api"])
        .run()
        .code(0)
        .stdout_has("ok (service api), 1 step");
    let typo = write_file(
        dir.path(),
        "typo.yaml",
        &DEPLOYMENT.replace("action: isolate", "action: reboot"),
    );
    Cli::new()
        .args(["init".as_ref(), "--check".as_ref(), typo.as_os_str()])
        .args(["--service", "api"])
        .usage_error("typo.yaml:11:");
}

#[test]
fn a_service_without_init_runs_its_workload_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(dir.path(), "shop.yaml", DEPLOYMENT);
    Cli::new()
        .args(["init".as_ref(), "--check".as_ref(), spec.as_os_str()])
        .args(["--service", "cache"])
        .run()
        .code(0)
        .stdout_has("no init steps");
    Cli::new()
        .args(["init".as_ref(), spec.as_os_str()])
        .args([
            "--service",
            "cache",
            "--",
            "sh",
            "-c",
            "echo workload-ran; exit 7",
        ])
        .run()
        .code(7)
        .stdout_has("workload-ran");
    // An unknown service still names the services there are.
    Cli::new()
        .args(["init".as_ref(), "--check".as_ref(), spec.as_os_str()])
        .args(["--service", "web"])
        .usage_error("no service `web`")
        .stderr_has("api, cache");
}
