//! The `switchboard` command line: check, flow simulate, acd simulate.

use std::process::Command;

fn sb(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run switchboard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_shipped_configuration() {
    let (code, out, err) = sb(&["check"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("ok"));
}

#[test]
fn check_reports_every_error_of_every_file_with_positions() {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cc = dir.join("cc.yaml");
    std::fs::write(&cc, "queues:\n  - name: q\n    strategy: longest-idel\nagents:\n  - { id: a, skils: { x: 1 } }\n").unwrap();
    let (code, out, _) = sb(&["check", "--contact-centre", cc.to_str().unwrap()]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cc.yaml:3:15:") && l.contains("longest-idle")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.contains("cc.yaml:5:")), "{out}");
    // The flows name queues that this file does not have: reported too, with positions.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ivr-flows/") && l.contains("queue")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flow_simulate_routes_a_spoken_request_to_its_queue() {
    let (code, out, err) = sb(&[
        "flow",
        "simulate",
        "ivr-flows/main.yaml",
        "--caller",
        "+15550100003",
        "--input",
        "speech:technical support",
        "--http-fixture",
        "ivr-flows/fixtures/demo.json",
        "--time",
        "2026-11-23T10:00",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("destination: queue `support`")),
        "{out}"
    );
}

#[test]
fn acd_simulate_agrees_with_erlang_c() {
    let (code, out, err) = sb(&[
        "acd",
        "simulate",
        "--calls",
        "20000",
        "--agents",
        "10",
        "--calls-per-hour",
        "150",
        "--aht",
        "180",
    ]);
    assert_eq!(code, 0, "{err}");
    let sl: Vec<f64> = out
        .lines()
        .find(|l| l.starts_with("service level"))
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches('%').parse().ok())
        .collect();
    // (simulated %, Erlang C %)
    assert_eq!(sl.len(), 2, "{out}");
    assert!(
        (sl[0] - sl[1]).abs() < 5.0,
        "simulated {}% vs Erlang C {}%\n{out}",
        sl[0],
        sl[1]
    );
}
