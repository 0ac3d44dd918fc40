//! The fuzz corpora (`fuzz/corpus/<target>/`, committed) replayed on stable through the same
//! entry functions the cargo-fuzz targets call (`cogbroker::fuzzing`): every input that once
//! mattered (seeds, and crashes found by `make fuzz` once fixed) stays a regression test.

use anyhow::{Context as _, ensure};
use cogbroker::fuzzing::TARGETS;
use cogbroker_e2e::workspace_root;

#[test]
fn every_corpus_file_replays_without_a_panic() -> anyhow::Result<()> {
    let fuzz = workspace_root().join("fuzz");
    let mut replayed = 0;
    for (name, entry) in TARGETS {
        let target = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        ensure!(
            target.is_file(),
            "no cargo-fuzz target for {name}: {}",
            target.display()
        );
        let dir = fuzz.join("corpus").join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("the corpus of {name} ({})", dir.display()))?
            .collect::<Result<_, _>>()?;
        files.sort_by_key(std::fs::DirEntry::path);
        ensure!(!files.is_empty(), "the corpus of {name} is empty");
        for file in files {
            let data = std::fs::read(file.path())?;
            let path = file.path();
            std::panic::catch_unwind(|| entry(&data))
                .map_err(|_| anyhow::anyhow!("{name} panicked on {}", path.display()))?;
            replayed += 1;
        }
    }
    // Every target file has an entry (none forgotten in TARGETS).
    for file in std::fs::read_dir(fuzz.join("fuzz_targets"))? {
        let name = file?.path();
        let stem = name
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a target name")?
            .to_owned();
        ensure!(
            TARGETS.iter().any(|(target, _)| *target == stem),
            "fuzz target {stem} is not in cogbroker::fuzzing::TARGETS"
        );
    }
    ensure!(replayed >= TARGETS.len());
    Ok(())
}

/// JWT-shaped inputs for the `jwt` entry, minted here rather than committed as token files:
/// a well-formed access token's shape, and one with `alg: none` and claims of the wrong types.
#[test]
fn minted_jwt_shapes_replay_without_a_panic() -> anyhow::Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let segment = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let inputs = [
        format!(
            "{}.{}.{}",
            segment(r#"{"alg":"RS256","kid":"k"}"#),
            segment(
                r#"{"sub":"u","exp":1700000000,"iat":1699996400,"token_use":"access","username":"alice"}"#
            ),
            segment("sig")
        ),
        format!(
            "{}.{}.",
            segment(r#"{"alg":"none"}"#),
            segment(r#"{"exp":"soon","iat":-1e+300}"#)
        ),
    ];
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == "jwt")
        .context("the jwt fuzz entry")?;
    for input in &inputs {
        std::panic::catch_unwind(|| entry(input.as_bytes()))
            .map_err(|_| anyhow::anyhow!("jwt panicked on {input}"))?;
    }
    Ok(())
}
