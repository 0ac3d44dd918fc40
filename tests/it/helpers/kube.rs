//! Real kubectl (`get --raw`) against a loopback https API server (kubectl runs exec plugins only
//! for https servers) that demands the profile's ID token, with the plugin declared as
//! client.authentication.k8s.io/v1 and v1beta1; a profile that needs a login makes kubectl fail
//! with our message, at once (`interactiveMode: Never`).

use std::sync::Arc;

use anyhow::ensure;
use base64::Engine as _;
use cogbroker_e2e::daemon::expect_code;
use cognito_auth::tokens::TokenUse;
use serde_json::json;

use super::fixture::{Response, Server, Tls, Verifier, World, run, shown};

fn api_server(world: &World, tls: &Tls) -> anyhow::Result<Server> {
    let verifier: Arc<Verifier> = Arc::clone(&world.verifier);
    Server::start(Some(Arc::clone(&tls.config)), move |request| {
        // The dispatcher asks for the version first, without credentials.
        if request.target == "/version" {
            return Response::json(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
            );
        }
        match request.bearer() {
            Some(token) if verifier.accepts(token, TokenUse::Id) => Response::json(
                200,
                &json!({"kind": "Status", "status": "Success", "message": "id token accepted"}),
            ),
            _ => Response::json(
                401,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401}),
            ),
        }
    })
}

fn kubeconfig(
    world: &World,
    tls: &Tls,
    server: &Server,
    api_version: &str,
    profile: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let ca = base64::engine::general_purpose::STANDARD.encode(tls.pem.as_bytes());
    let binary = world.bin_dir()?.join("cogbroker");
    let text = format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: cognito
  user:
    exec:
      apiVersion: {api_version}
      command: {command}
      args: ["kube-credential", "{profile}"]
      interactiveMode: Never
contexts:
- name: test
  context:
    cluster: test
    user: cognito
current-context: test
"#,
        port = server.addr.port(),
        command = binary.display(),
    );
    let path = world.sandbox.dir.path().join(format!(
        "kubeconfig-{profile}-{}",
        api_version.replace(['/', '.'], "_")
    ));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn kubectl(world: &World, kubeconfig: &std::path::Path) -> anyhow::Result<std::process::Output> {
    let home = world.sandbox.dir.path().join("kube-home");
    let mut command = world.client("kubectl", &home)?;
    command.arg("--kubeconfig").arg(kubeconfig).args([
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods",
    ]);
    run(command, None)
}

#[test]
fn kubectl_uses_the_id_token_in_v1_and_v1beta1() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let tls = Tls::self_signed()?;
    let server = api_server(&world, &tls)?;
    let id_token = world.token("id")?;
    for api_version in [
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
    ] {
        let config = kubeconfig(&world, &tls, &server, api_version, "dev")?;
        let before = server.requests().len();
        let output = kubectl(&world, &config)?;
        expect_code(&output, 0).map_err(|error| error.context(api_version))?;
        ensure!(
            String::from_utf8_lossy(&output.stdout).contains("id token accepted"),
            "{api_version}: {}",
            shown(&output)
        );
        let presented: Vec<_> = server.requests()[before..]
            .iter()
            .filter_map(|r| r.bearer().map(str::to_owned))
            .collect();
        ensure!(
            presented.contains(&id_token),
            "{api_version}: kubectl sent the profile's ID token"
        );
    }
    // Who took the token: the audit names kubectl as the process that ran the plugin.
    let kubectl = std::fs::canonicalize(cogbroker_e2e::on_path("kubectl")?)?
        .display()
        .to_string();
    let parents = world.audit_parents("dev")?;
    ensure!(
        parents.contains(&kubectl),
        "{kubectl} is not named among the plugin's parents: {parents:?}"
    );
    Ok(())
}

#[test]
fn kubectl_shows_that_a_login_is_needed() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let tls = Tls::self_signed()?;
    let server = api_server(&world, &tls)?;
    let config = kubeconfig(
        &world,
        &tls,
        &server,
        "client.authentication.k8s.io/v1",
        "idle",
    )?;
    let output = kubectl(&world, &config)?;
    ensure!(!output.status.success(), "{}", shown(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("cogbroker login idle"),
        "{}",
        shown(&output)
    );
    ensure!(stderr.contains("exit code 4"), "{}", shown(&output));
    Ok(())
}

#[test]
fn the_plugin_answers_the_version_it_was_asked_for() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let token = world.token("id")?;
    let mut command = world.sandbox.command()?;
    command.args(["kube-credential", "dev"]).env(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#,
    );
    let output = run(command, None)?;
    expect_code(&output, 0)?;
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(
        reply["apiVersion"] == "client.authentication.k8s.io/v1beta1",
        "{reply}"
    );
    ensure!(reply["status"]["token"] == token.as_str());
    ensure!(
        reply["status"]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{reply}"
    );
    // No KUBERNETES_EXEC_INFO: v1. An access token on request.
    let output = world.cli(&["kube-credential", "dev", "--kind", "access"], None)?;
    expect_code(&output, 0)?;
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(reply["apiVersion"] == "client.authentication.k8s.io/v1");
    ensure!(reply["status"]["token"] == world.token("access")?.as_str());
    // A version we do not speak: a clear error, nothing on stdout.
    let mut command = world.sandbox.command()?;
    command.args(["kube-credential", "dev"]).env(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}"#,
    );
    let output = run(command, None)?;
    expect_code(&output, 1)?;
    ensure!(output.stdout.is_empty());
    ensure!(String::from_utf8_lossy(&output.stderr).contains("v1alpha1"));
    Ok(())
}
