//! Golden transcripts: each `flows/golden/*.txt` starts with a `# flow simulate
//! ...` line (the CLI arguments); the rest is the expected transcript.
//! Run with `UPDATE_GOLDEN=1` to rewrite the files after a deliberate change.
mod ivr_support;

use std::path::Path;

use switchboard::ivr::{parse_simulate_args, simulate_file};

const PREFIX: &str = "# flow simulate ";

fn run_golden(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (command, expected) = text
        .split_once('\n')
        .ok_or_else(|| format!("{}: empty golden file", path.display()))?;
    let args = command
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("{}: first line must start with `{PREFIX}`", path.display()))?;
    let args = parse_simulate_args(ivr_support::shell_words(args)).map_err(|e| e.to_string())?;
    let transcript = simulate_file(&args, &ivr_support::known()).map_err(|e| e.to_string())?;
    let actual = transcript.to_string();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, format!("{command}\n{actual}")).map_err(|e| e.to_string())?;
        return Ok(());
    }
    if actual != expected {
        return Err(format!(
            "{} differs.\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
    if matches!(
        transcript.destination,
        switchboard::ivr::Destination::Stuck(_)
    ) {
        return Err(format!("{}: the call got stuck", path.display()));
    }
    Ok(())
}

#[test]
fn golden_transcripts() {
    let mut paths: Vec<_> = std::fs::read_dir("ivr-flows/golden")
        .expect("ivr-flows/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 8,
        "expected the golden scenarios, found {}",
        paths.len()
    );
    let failures: Vec<String> = paths.iter().filter_map(|p| run_golden(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
