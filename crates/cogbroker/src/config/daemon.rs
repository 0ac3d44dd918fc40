//! The `[daemon]` table: where the daemon listens, its socket, store, state directory and log
//! level, each key from the command line, the environment, the file or its default.

use super::*;

pub(super) fn validate_daemon(
    ctx: &mut Ctx<'_>,
    raw: Option<RawDaemon>,
    env: &dyn EnvSource,
) -> Option<DaemonConfig> {
    let raw = raw.unwrap_or_default();
    let errors_before = ctx.errors.len();

    let listen = match setting(env, "COGBROKER_LISTEN", raw.listen) {
        None => Listen::Tcp(
            DEFAULT_LISTEN
                .parse()
                .expect("the default listen address parses"),
        ),
        Some((value, origin)) => match parse_listen(&value) {
            Ok(listen) => listen,
            Err(message) => {
                report(ctx, &origin, "daemon.listen", message);
                Listen::Off
            }
        },
    };

    let socket_setting = setting(env, "COGBROKER_SOCKET", raw.socket);
    let socket = match &socket_setting {
        None => SocketSetting::Path(auto_socket(env)),
        Some((value, origin)) => match value.as_str() {
            "off" => SocketSetting::Off,
            "auto" => SocketSetting::Path(auto_socket(env)),
            path => match absolute_path(path, env) {
                Ok(path) => SocketSetting::Path(path),
                Err(message) => {
                    report(
                        ctx,
                        origin,
                        "daemon.socket",
                        format!("{message}; or \"auto\" or \"off\""),
                    );
                    SocketSetting::Off
                }
            },
        },
    };
    if let SocketSetting::Path(path) = &socket {
        let length = path.as_os_str().len();
        if length > MAX_SOCKET_PATH {
            let message = format!(
                "the socket path {} is {length} bytes; Unix sockets allow at most {MAX_SOCKET_PATH}: choose a shorter path or \"off\"",
                path.display()
            );
            match &socket_setting {
                Some((_, origin)) => report(ctx, origin, "daemon.socket", message),
                None => ctx.errors.push(ConfigError {
                    path: ctx.path.clone(),
                    line: None,
                    key: "daemon.socket".to_owned(),
                    message,
                }),
            }
        }
    }

    let store = match setting(env, "COGBROKER_STORE", raw.store) {
        None => StoreKind::Auto,
        Some((value, origin)) => match StoreKind::from_str(&value) {
            Ok(kind) => kind,
            Err(message) => {
                report(ctx, &origin, "daemon.store", message);
                StoreKind::Auto
            }
        },
    };

    let state_dir = match setting(env, "COGBROKER_STATE_DIR", raw.state_dir) {
        None => xdg_dir(env, "XDG_STATE_HOME", ".local/state").join("cogbroker"),
        Some((value, origin)) => match absolute_path(&value, env) {
            Ok(path) => path,
            Err(message) => {
                report(ctx, &origin, "daemon.state_dir", message);
                PathBuf::new()
            }
        },
    };

    let api_key_file = match raw.api_key_file {
        None => None,
        Some(spanned) => {
            let span = spanned.span();
            match absolute_path(spanned.get_ref(), env) {
                Ok(path) => Some(path),
                Err(message) => {
                    ctx.error_at(span, "daemon.api_key_file", message);
                    None
                }
            }
        }
    };

    let log = match setting(env, "COGBROKER_LOG", raw.log) {
        None => "info".to_owned(),
        Some((value, origin)) => {
            if let Err(error) = tracing_subscriber::EnvFilter::try_new(&value) {
                report(
                    ctx,
                    &origin,
                    "daemon.log",
                    format!(
                        "invalid log filter {value:?} ({error}); use a level (error, warn, info, debug, trace) or directives like \"cogbroker=debug,warn\""
                    ),
                );
            }
            value
        }
    };

    let autostart = match non_empty(env.var("COGBROKER_NO_AUTOSTART")).as_deref() {
        None | Some("0" | "false") => raw.autostart.unwrap_or(true),
        Some("1" | "true") => false,
        Some(other) => {
            ctx.env_error(
                "COGBROKER_NO_AUTOSTART",
                format!("{other:?} is not a boolean; use 1 (no autostart) or 0"),
            );
            true
        }
    };

    (ctx.errors.len() == errors_before).then_some(DaemonConfig {
        listen,
        socket,
        store,
        state_dir,
        api_key_file,
        log,
        autostart,
    })
}

/// Parses a `listen` value: "off", or a loopback `ADDRESS:PORT` (`localhost:PORT` means
/// 127.0.0.1). Anything else is refused: a token broker must never listen beyond this machine.
pub fn parse_listen(value: &str) -> Result<Listen, String> {
    if value == "off" {
        return Ok(Listen::Off);
    }
    let address = if let Some(port) = value.strip_prefix("localhost:") {
        port.parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| format!("invalid port in {value:?}"))?
    } else {
        value.parse::<SocketAddr>().map_err(|_| {
            format!(
                "{value:?} is not an address:port; allowed: \"127.0.0.1:7467\", \"[::1]:7467\", \"localhost:7467\" or \"off\""
            )
        })?
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "{value:?} is not a loopback address; cogbroker only listens on 127.0.0.0/8 or [::1] (or \"off\")"
        ));
    }
    Ok(Listen::Tcp(address))
}

fn auto_socket(env: &dyn EnvSource) -> PathBuf {
    let runtime = non_empty(env.var("XDG_RUNTIME_DIR"))
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tmp = non_empty(env.var("TMPDIR")).unwrap_or_else(|| "/tmp".to_owned());
            PathBuf::from(tmp).join(format!("cogbroker-{}", rustix::process::getuid().as_raw()))
        });
    runtime.join("cogbroker").join("cogbroker.sock")
}

pub(super) fn absolute_path(value: &str, env: &dyn EnvSource) -> Result<PathBuf, String> {
    if let Some(rest) = value.strip_prefix("~/") {
        return Ok(home(env).join(rest));
    }
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "{value:?} is not an absolute path; write a path starting with / or ~/"
        ))
    }
}
