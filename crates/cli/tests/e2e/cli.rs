//! The kubectl-shaped commands: logs and its flags, exec's exit codes, streams and
//! terminal, get's output formats and watches, --help, namespaces and standard input.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn logs_current_previous_timestamps_and_follow() {
    let env = Env::new();
    let name = format!("logs-{}", unique());
    // The first run prints "first" and fails; the second prints "second" and ticks on.
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, 'if [ -e /data/ran ]; then echo second; while true; do echo tick; sleep 0.2; done; else touch /data/ran; echo first; echo oops >&2; exit 1; fi']
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: other
    image: {IMAGE}
    command: [sh, -c, 'for i in 1 2 3; do echo line $i; sleep 0.3; done']
  volumes:
  - {{name: data, emptyDir: {{}}}}
"
        ),
    ));
    env.wait_for(&name, Duration::from_secs(30), |p| {
        cstatus(p, "app")["restartCount"] == 1 && cstatus(p, "app")["state"]["running"].is_object()
    });

    // -c is needed with two containers; the error names the choices.
    let out = env.run(&["logs", &name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("choose one of: [app other]"), "{err}");

    let prev = env.ok(&["logs", &name, "-c", "app", "--previous"]);
    assert_eq!(prev, "first\noops\n");
    let cur = env.ok(&["logs", &name, "-c", "app"]);
    assert!(cur.starts_with("second\ntick\n"), "{cur}");
    assert!(!cur.contains("first"), "{cur}");

    // --timestamps: RFC 3339 with nanoseconds, then a space, then the line.
    let ts = env.ok(&["logs", &name, "-c", "app", "-p", "--timestamps"]);
    let lines: Vec<&str> = ts.lines().collect();
    assert_eq!(lines.len(), 2, "{ts}");
    for (l, want) in lines.iter().zip(["first", "oops"]) {
        let (stamp, text) = l.split_once(' ').unwrap();
        assert_eq!(text, want);
        let t: jiff::Timestamp = stamp.parse().unwrap_or_else(|e| panic!("{stamp}: {e}"));
        let age = jiff::Timestamp::now().duration_since(t);
        assert!(
            age.as_secs() >= 0 && age.as_secs() < 60,
            "stamp {stamp} is not recent"
        );
    }

    // -f on a container that ends: prints every line as it comes, and returns when the
    // container stops.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["logs", &name, "-c", "other", "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    for l in BufReader::new(follow.stdout.take().unwrap()).lines() {
        got.push(l.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = follow.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = follow.kill();
            panic!("logs -f did not return after the container stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success());
    assert_eq!(got, ["line 1", "line 2", "line 3"]);

    // -f on a running container keeps printing new lines.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["logs", &name, "-c", "app", "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let before = env.ok(&["logs", &name, "-c", "app"]).lines().count();
    let mut n = 0;
    let mut line = String::new();
    while n < before + 5 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "logs -f ended early"
        );
        n += 1;
    }
    assert_eq!(line, "tick\n");
    follow.kill().unwrap();
    let _ = follow.wait();
}

#[test]
fn exec_passes_exit_codes_and_streams_through() {
    let env = Env::new();
    let name = format!("exec-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, '3600']
"
        ),
    ));
    env.wait_phase(&name, "Running");
    for code in [0, 1, 7, 42] {
        let (got, _) = env.exec(&name, "app", &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(got, code);
    }
    // Killed by a signal: 128 + the signal, as a shell reports it.
    let (got, _) = env.exec(&name, "app", &["sh", "-c", "kill -9 $$"]);
    assert_eq!(got, 137);

    // Standard output and error reach the caller separately.
    let out = env.run(&["exec", &name, "--", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // -i passes standard input; without it the command reads nothing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["exec", "-i", &name, "--", "sh", "-c", "tr a-z A-Z; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello pod\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO POD\n");
    let (_, got) = env.exec(&name, "app", &["cat"]);
    assert_eq!(got, "");

    // The command runs in the container: its hostname, its root, its environment.
    let (_, host) = env.exec(&name, "app", &["hostname"]);
    assert_eq!(host.trim(), name);

    // A command that does not exist, and a container that does not.
    let out = env.run(&["exec", &name, "--", "/no/such/binary"]);
    assert!(!out.status.success());
    let out = env.run(&["exec", &name, "-c", "nope", "--", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"nope\" is not valid"), "{err}");
}

#[test]
fn get_output_formats() {
    let env = Env::new();
    let names: Vec<String> = (0..2).map(|i| format!("fmt{i}-{}", unique())).collect();
    for n in &names {
        env.apply_ok(&pod_yaml(
            n,
            &format!(
                "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
            ),
        ));
        env.wait_phase(n, "Running");
    }
    // -o name: one `pod/NAME` per pod.
    let mut listed: Vec<String> = env
        .ok(&["get", "pods", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    let want: Vec<String> = names.iter().map(|n| format!("pod/{n}")).collect();
    assert_eq!(listed, want);

    // -o yaml for one pod: the Pod object, as -o json shows it.
    let yaml = env.ok(&["get", "pods", &names[0], "-o", "yaml"]);
    let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml["kind"], "Pod");
    assert_eq!(from_yaml["apiVersion"], "v1");
    assert_eq!(from_yaml["metadata"]["name"], names[0].as_str());
    assert_eq!(from_yaml["status"]["phase"], "Running");
    assert_eq!(
        from_yaml["metadata"]["uid"],
        env.pod(&names[0])["metadata"]["uid"]
    );

    // -o yaml for all: a List of them.
    let yaml = env.ok(&["get", "pods", "-o", "yaml"]);
    let list: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // The table: NAME READY STATUS RESTARTS AGE.
    let table = env.ok(&["get", "pods"]);
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(names.iter().any(|n| n == f[0]), "{table}");
        assert_eq!(&f[1..4], ["1/1", "Running", "0"]);
    }

    // A pod that does not exist, and a format that does not.
    let out = env.run(&["get", "pods", "nope", "-o", "name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" not found"));
    let out = env.run(&["get", "pods", "-o", "xml"]);
    assert!(!out.status.success());
}

/// `--sort-by`, `-o custom-columns`, JSONPath ranges and `delete -l`, as kubectl has them.
#[test]
fn sort_by_custom_columns_ranges_and_delete_by_label() {
    let env = Env::new();
    let id = unique();
    // Created in the order c, a, b; tiers 2, 1, 2.
    for (n, tier, extra) in [
        ("c", "2", ""),
        (
            "a",
            "1",
            ", {name: side, image: IMAGE, command: [sleep, '3600']}",
        ),
        ("b", "2", ""),
    ] {
        env.apply_ok(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {n}-{id}, labels: {{tier: '{tier}'}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: app, image: {IMAGE}, command: [sleep, '3600']}}{}]\n",
            extra.replace("IMAGE", IMAGE)
        ));
        // Creation times have whole seconds: one second apart, they sort in this order.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let out = env.ok(&[
        "get",
        "pods",
        "--sort-by=.metadata.name",
        "-o",
        "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier,CONTAINERS:.spec.containers[*].name,NODE:.spec.nodeNameX",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "TIER", "CONTAINERS", "NODE"]);
    let (a, b, c) = (format!("a-{id}"), format!("b-{id}"), format!("c-{id}"));
    assert_eq!(rows[1], [a.as_str(), "1", "app,side", "<none>"]);
    assert_eq!(rows[2][0], b);
    assert_eq!(rows[3][0], c);
    // Sorted by creation time: the order of creation.
    let names = env.ok(&[
        "get",
        "pods",
        "--sort-by={.metadata.creationTimestamp}",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    assert_eq!(names, format!("{c}\n{a}\n{b}\n"));
    let out = env.ok(&[
        "get",
        "pods",
        "--no-headers",
        "-o",
        "custom-columns=N:.metadata.name",
    ]);
    assert_eq!(out.lines().count(), 3, "{out}");

    let out = env.ok(&["delete", "pods", "-l", "tier=2"]);
    let mut deleted: Vec<&str> = out.lines().collect();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            format!("pod \"{b}\" deleted"),
            format!("pod \"{c}\" deleted")
        ]
    );
    assert_eq!(env.pod_names(), std::slice::from_ref(&a));
    let out = env.run(&["delete", "pods", "-l", "tier=9"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No resources found\n");
    assert!(
        !env.run(&["delete", "-l", "tier=1"]).status.success(),
        "a type is needed"
    );
}

/// Runs `peapod ARGS` with `input` on its standard input; returns (code, stdout, stderr).
fn run_with_input(env: &Env, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `attach` (output from now on; input with -i) and `run -i/-t --rm`, as kubectl's.
#[test]
fn attach_and_run_interactively() {
    let env = Env::new();
    let id = unique();
    // run -i --rm --restart=Never: input reaches the container, its exit code is ours, and
    // the pod is gone afterwards.
    let t1 = format!("t1-{id}");
    let (code, out, err) = run_with_input(
        &env,
        &[
            "run",
            "-i",
            "--rm",
            "--restart=Never",
            &t1,
            &format!("--image={IMAGE}"),
            "--",
            "sh",
            "-c",
            "read x; echo got $x; exit 3",
        ],
        "hello\n",
    );
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(
        out,
        format!("pod/{t1} created\ngot hello\npod \"{t1}\" deleted\n")
    );
    assert!(env.pod_names().is_empty());
    // With a terminal too.
    let t2 = format!("t2-{id}");
    let (code, out, err) = run_with_input(
        &env,
        &[
            "run",
            "-it",
            "--rm",
            "--restart=Never",
            &t2,
            &format!("--image={IMAGE}"),
            "--",
            "sh",
            "-c",
            "read x; [ -t 0 ] && echo tty:$x",
        ],
        "hi\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tty:hi"), "{out}");
    assert!(
        err.contains("If you don't see a command prompt, try pressing enter."),
        "{err}"
    );
    assert!(env.pod_names().is_empty());
    assert!(
        !env.run(&["run", "--rm", &t2, &format!("--image={IMAGE}")])
            .status
            .success(),
        "--rm needs -i or -t"
    );

    // attach: the output from now on, until the container exits.
    let ticker = format!("ticker-{id}");
    env.apply_ok(&pod_yaml(
        &ticker,
        &format!("  restartPolicy: Never\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, 'i=0; while [ $i -lt 15 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done']\n"),
    ));
    env.wait_phase(&ticker, "Running");
    let out = env.ok(&["attach", &ticker]);
    assert!(out.ends_with("tick 14\n"), "{out}");
    assert!(
        !out.contains("tick 0\n"),
        "only what comes after attaching: {out}"
    );
    // attach -i to a container with stdinOnce: our input, then its end.
    let echo = format!("echo-{id}");
    env.apply_ok(&pod_yaml(
        &echo,
        &format!("  restartPolicy: Never\n  containers:\n  - name: c\n    image: {IMAGE}\n    stdin: true\n    stdinOnce: true\n    command: [sh, -c, 'while read l; do echo echo:$l; done; echo bye']\n"),
    ));
    env.wait_phase(&echo, "Running");
    let (code, out, err) = run_with_input(&env, &["attach", "-i", &echo], "a\nb\n");
    assert_eq!((code, out.as_str()), (0, "echo:a\necho:b\nbye\n"), "{err}");
    // -i to a container without stdin is refused.
    let out = env.run(&["attach", "-i", &ticker]);
    assert!(!out.status.success());
}

/// Completions as the shell asks for them (`COMPLETE=fish peapod -- peapod ...`): types,
/// pod and workload names, `TYPE/NAME`, and a pod's containers for `-c`.
#[test]
fn shell_completion_names_what_exists() {
    let env = Env::new();
    let id = unique();
    let pod = format!("comp-{id}");
    env.apply_ok(&pod_yaml(
        &pod,
        &format!("  initContainers: [{{name: init, image: {IMAGE}, command: ['true']}}]\n  containers:\n  - {{name: app, image: {IMAGE}, command: [sleep, '3600']}}\n  - {{name: side, image: {IMAGE}, command: [sleep, '3600']}}\n"),
    ));
    env.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n");
    let complete = |line: &str| -> Vec<String> {
        let mut words = vec!["peapod", "--config", env.config.to_str().unwrap()];
        words.extend(line.split(' '));
        let out = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .env("COMPLETE", "fish")
            .arg("--")
            .args(&words)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .filter(|l| !l.starts_with('-'))
            .collect()
    };
    assert_eq!(complete("exec comp"), std::slice::from_ref(&pod));
    assert_eq!(complete("logs comp"), std::slice::from_ref(&pod));
    assert_eq!(
        complete(&format!("exec {pod} -c ")),
        ["app", "init", "side"]
    );
    assert!(complete("logs -c s").is_empty(), "no pod named yet");
    assert_eq!(complete(&format!("attach {pod} -c s")), ["side"]);
    assert!(complete("exec x -- ").is_empty(), "a command, not a pod");
    assert_eq!(complete("get dep"), ["deployments"]);
    assert_eq!(complete("get pods c"), std::slice::from_ref(&pod));
    assert_eq!(complete("describe cm "), ["settings"]);
    assert_eq!(complete("delete configmap/s"), ["configmap/settings"]);
    assert_eq!(complete("get pods c -n elsewhere").len(), 0);
    // The scripts to source.
    let bash = env.ok(&["completion", "bash"]);
    assert!(
        bash.contains("COMPLETE=\"bash\"") || bash.contains("COMPLETE=bash"),
        "{bash}"
    );
    assert!(bash.contains("complete "), "{bash}");
    assert!(!env.ok(&["completion", "zsh"]).is_empty());
    assert!(!env.ok(&["completion", "fish"]).is_empty());
    assert!(!env.run(&["completion", "tcsh"]).status.success());
}

/// `logs -f` of several containers follows them all at once, each line whole.
#[test]
fn logs_follow_several_containers_at_once() {
    let env = Env::new();
    let pod = format!("multi-{}", unique());
    let c = |n: &str| {
        format!(
            "  - {{name: {n}, image: {IMAGE}, command: [sh, -c, 'i=0; while [ $i -lt 6 ]; do echo {n}$i; i=$((i+1)); sleep 0.3; done']}}\n"
        )
    };
    env.apply_ok(&pod_yaml(
        &pod,
        &format!(
            "  restartPolicy: Never\n  containers:\n{}{}",
            c("a"),
            c("b")
        ),
    ));
    env.wait_phase(&pod, "Running");
    let out = env.ok(&["logs", "-f", "--all-containers", "--prefix", &pod]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut want: Vec<String> = Vec::new();
    for n in ["a", "b"] {
        for i in 0..6 {
            want.push(format!("[pod/{pod}/{n}] {n}{i}"));
        }
    }
    want.sort();
    assert_eq!(lines, want, "{out}");
    let out = env.run(&[
        "logs",
        "-f",
        "--all-containers",
        "--max-log-requests=1",
        &pod,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("maximum allowed concurrency is 1"));
}

/// `top pod`: millicores over a second and working-set memory, per pod and per container.
#[test]
fn top_shows_cpu_and_memory_from_the_cgroups() {
    let env = Env::new();
    let pod = format!("burn-{}", unique());
    env.apply_ok(&pod_yaml(
        &pod,
        &format!(
            "  terminationGracePeriodSeconds: 1
  containers:
  - {{name: busy, image: {IMAGE}, command: [sh, -c, 'while :; do :; done'], resources: {{limits: {{cpu: 400m}}}}}}
  - {{name: capped, image: {IMAGE}, command: [sh, -c, 'while :; do :; done'], resources: {{limits: {{cpu: 100m}}}}}}
  - {{name: mem, image: {IMAGE}, command: [sh, -c, 'x=$(yes | head -c 30000000); echo held; while :; do sleep 1; done']}}
"
        ),
    ));
    env.wait_phase(&pod, "Running");
    // Until the memory is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.ok(&["logs", &pod, "-c", "mem"]).contains("held") {
        assert!(
            Instant::now() < deadline,
            "the mem container never held its memory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = env.ok(&["top", "pod", &pod, "--containers", "--no-headers"]);
    let figures: std::collections::HashMap<String, (u64, u64)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[0], pod, "{out}");
            let cpu = f[2].trim_end_matches('m').parse().unwrap();
            let mem = f[3].trim_end_matches("Mi").parse().unwrap();
            (f[1].to_string(), (cpu, mem))
        })
        .collect();
    // Both spin; their CFS quotas (kept small, not to starve the tests beside this one)
    // hold them near 400m and 100m.
    assert!(figures["busy"].0 >= 100, "{out}");
    assert!(figures["busy"].0 <= 500, "{out}");
    assert!(figures["capped"].0 <= 150, "{out}");
    assert!(figures["mem"].1 >= 25, "{out}");
    let total = env.ok(&["top", "pod"]);
    assert!(total.starts_with("NAME"), "{total}");
    assert!(total.contains(&pod), "{total}");
    env.ok(&["delete", "pod", &pod, "--force"]);
    let out = env.run(&["top", "pod", &pod]);
    assert!(!out.status.success());
}

/// `exec -t`: the process leads a new session whose controlling terminal is a terminal of
/// the container's own devpts; output comes through it and the exit code still passes.
#[test]
fn exec_with_a_terminal() {
    let env = Env::new();
    let name = format!("tty-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        ),
    ));
    env.wait_phase(&name, "Running");
    let script = "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-tty; \
                  set -- $(cut -d' ' -f1,6,7 /proc/$$/stat); echo pid=$1 sid=$2 tty_nr=$3; exit 5";
    let out = env.run(&["exec", "-t", &name, "--", "sh", "-c", script]);
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert_eq!(out.status.code(), Some(5), "{text}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("/dev/pts/0"), "{text}");
    assert_eq!(lines.next(), Some("stdio-is-tty"), "{text}");
    let ids: std::collections::HashMap<&str, i64> = lines
        .next()
        .unwrap_or_else(|| panic!("{text}"))
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert_eq!(ids["pid"], ids["sid"], "not a session leader: {text}");
    assert_ne!(ids["tty_nr"], 0, "no controlling terminal: {text}");
    // Input typed at the terminal reaches the process (-i -t).
    let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args([
            "exec",
            "-i",
            "-t",
            &name,
            "--",
            "sh",
            "-c",
            "read line; echo got:$line",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("got:typed"));
    env.ok(&["delete", "pod", &name, "--force"]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// `--help` on every command; namespaces with -n and -A; apply from standard input;
/// `delete --grace-period`.
#[test]
fn help_namespaces_stdin_and_grace_period() {
    let env = Env::new();
    for cmd in [
        vec![],
        vec!["apply"],
        vec!["get"],
        vec!["describe"],
        vec!["logs"],
        vec!["exec"],
        vec!["delete"],
        vec!["image"],
        vec!["image", "load"],
        vec!["image", "ls"],
        vec!["image", "rm"],
        vec!["image", "inspect"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = env.ok(&args);
        assert!(out.contains("Usage: peapod"), "{cmd:?}: {out}");
    }

    let name = format!("nsd-{}", unique());
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  terminationGracePeriodSeconds: 30\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sh, -c, 'trap \"\" TERM; while true; do sleep 0.1; done']\n"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["apply", "-f", "-", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pod/{name} created")));

    // Not in the default namespace; found with -n and listed with -A.
    assert!(!env.run(&["get", "pods", &name]).status.success());
    let pod: serde_json::Value =
        serde_json::from_str(&env.ok(&["get", "pods", &name, "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(pod["metadata"]["namespace"], "team");
    assert_eq!(pod["status"]["phase"], "Running");
    let all = env.ok(&["get", "pods", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("team") && l.contains(&name)),
        "{all}"
    );

    // --grace-period 1 overrides the pod's 30 s for a container that ignores SIGTERM.
    let t0 = Instant::now();
    env.ok(&["delete", "pod", &name, "-n", "team", "--grace-period", "1"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "deletion took {took:?}"
    );
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

/// `get pods -w` prints a row at each status change; `get events -w` prints events as
/// they happen.
#[test]
fn watch_pods_and_events() {
    let env = Env::new();
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_peapod"))
            .arg("--config")
            .arg(&env.config)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut pods = spawn(&["get", "pods", "-w"]);
    let mut events = spawn(&["get", "events", "-w"]);
    // Lines come through channels so reads can time out.
    let lines = |child: &mut std::process::Child| {
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                if tx.send(l.unwrap()).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let pod_lines = lines(&mut pods);
    let event_lines = lines(&mut events);
    let name = format!("watched-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sh, -c, 'sleep 1; exit 0']\n"
        ),
    ));
    let collect_until = |rx: &std::sync::mpsc::Receiver<String>, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                let done = l.contains(want);
                got.push(l);
                if done {
                    return got;
                }
            }
        }
        panic!("no line with {want:?}; got {got:#?}");
    };
    let seen = collect_until(&pod_lines, "Completed");
    let statuses: Vec<&str> = seen
        .iter()
        .filter(|l| l.starts_with(&name))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    let running = statuses.iter().position(|s| *s == "Running");
    let completed = statuses.iter().position(|s| *s == "Completed");
    assert!(
        running.is_some() && running < completed,
        "statuses in order: {statuses:?}"
    );
    // No row repeats itself without a change in between.
    for w in seen.windows(2) {
        assert_ne!(w[0], w[1], "{seen:#?}");
    }
    let ev = collect_until(&event_lines, "Started");
    assert!(ev.iter().any(|l| l.contains("Scheduled")), "{ev:#?}");
    assert!(
        ev.iter().any(|l| l.contains(&format!("pod/{name}"))),
        "{ev:#?}"
    );
    for mut c in [pods, events] {
        c.kill().unwrap();
        let _ = c.wait();
    }
}

#[test]
fn selectors_labels_and_headers_as_kubectl() {
    let env = Env::new();
    let tag = unique();
    let pod = |name: &str, labels: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        )
    };
    let (web, db) = (format!("web-{tag}"), format!("db-{tag}"));
    env.apply_ok(&format!(
        "{}---\n{}",
        pod(&web, "{app: web, tier: front}"),
        pod(&db, "{app: db}")
    ));
    env.wait_phase(&web, "Running");
    env.wait_phase(&db, "Running");
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["get", "pods", "-o", "name"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["-l", "app=web"]), [format!("pod/{web}")]);
    assert_eq!(
        names(&["-l", "app in (web,db),!tier"]),
        [format!("pod/{db}")]
    );
    assert_eq!(names(&["-l", "tier"]), [format!("pod/{web}")]);
    assert_eq!(
        names(&["--field-selector", &format!("metadata.name={db}")]),
        [format!("pod/{db}")]
    );
    assert_eq!(
        names(&["--field-selector", "status.phase!=Running"]),
        Vec::<String>::new()
    );
    let table = env.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--show-labels",
        "--no-headers",
    ]);
    let line = table.lines().next().unwrap_or_default();
    assert!(line.starts_with(&web), "{table}");
    assert!(line.ends_with("app=web,tier=front"), "{table}");
    assert_eq!(table.lines().count(), 1, "{table}");
    let bad = env.run(&["get", "pods", "-l", "app in (web"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unbalanced"));
    for n in [&web, &db] {
        env.ok(&["delete", "pod", n, "--force"]);
    }
}

#[test]
fn wait_and_jsonpath_as_kubectl() {
    let env = Env::new();
    let name = format!("waiter-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n    readinessProbe: {{exec: {{command: ['true']}}, periodSeconds: 1}}\n"
        ),
    ));
    let target = format!("pod/{name}");
    let out = env.ok(&["wait", &target, "--for=condition=Ready", "--timeout=30s"]);
    assert_eq!(out, format!("pod/{name} condition met\n"));
    let out = env.ok(&[
        "wait",
        &target,
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=5s",
    ]);
    assert_eq!(out, format!("pod/{name} condition met\n"));
    let phase = env.ok(&[
        "get",
        "pod",
        &name,
        "-o",
        "jsonpath={.status.phase} {.spec.containers[0].name}",
    ]);
    assert_eq!(phase, "Running app");
    // A condition that does not come: a timeout, exit 1.
    let t0 = std::time::Instant::now();
    let out = env.run(&[
        "wait",
        &target,
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=1s",
    ]);
    assert!(!out.status.success());
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!(
        "timed out waiting for the condition on pods/{name}"
    )));
    // --for=delete returns once the pod is gone.
    let waiter = std::process::Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["wait", &target, "--for=delete", "--timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.ok(&["delete", "pod", &name, "--force"]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("pod/{name} condition met\n")
    );
}

#[test]
fn logs_tail_since_prefix_all_containers_and_selectors() {
    let env = Env::new();
    let name = format!("chatty-{}", unique());
    env.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: chatty}}\nspec:\n  restartPolicy: Never\n  initContainers:\n  - name: setup\n    image: {IMAGE}\n    command: [sh, -c, 'echo ready']\n  containers:\n  - name: a\n    image: {IMAGE}\n    command: [sh, -c, 'for i in 1 2 3 4 5; do echo a$i; done']\n  - name: b\n    image: {IMAGE}\n    command: [sh, -c, 'echo b1; echo b2']\n"
    ));
    env.wait_phase(&name, "Succeeded");
    assert_eq!(env.ok(&["logs", &name, "-c", "a", "--tail=2"]), "a4\na5\n");
    assert_eq!(env.ok(&["logs", &name, "-c", "a", "--tail", "0"]), "");
    assert_eq!(
        env.ok(&["logs", &name, "--all-containers", "--prefix", "--tail=1"]),
        format!("[pod/{name}/setup] ready\n[pod/{name}/a] a5\n[pod/{name}/b] b2\n")
    );
    assert_eq!(env.ok(&["logs", "-l", "app=chatty", "--tail=1"]), "a5\n");
    assert_eq!(
        env.ok(&["logs", &name, "-c", "b", "--since=1h"]),
        "b1\nb2\n"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(env.ok(&["logs", &name, "-c", "b", "--since=1s"]), "");
    // Following three containers is more than two streams allow.
    let out = env.run(&[
        "logs",
        &name,
        "--all-containers",
        "-f",
        "--max-log-requests=2",
    ]);
    assert!(!out.status.success());
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn run_makes_a_pod_as_kubectl_run() {
    let env = Env::new();
    let name = format!("runner-{}", unique());
    let out = env.ok(&[
        "run",
        &name,
        "--image",
        IMAGE,
        "--restart=Never",
        "--env=GREETING=hello",
        "--image-pull-policy=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "echo $GREETING",
    ]);
    assert_eq!(out, format!("pod/{name} created\n"));
    let pod = env.wait_phase(&name, "Succeeded");
    assert_eq!(pod["metadata"]["labels"]["run"], name);
    assert_eq!(pod["spec"]["containers"][0]["name"], name);
    assert_eq!(env.ok(&["logs", &name]), "hello\n");
    // A second run of the same name: AlreadyExists.
    let again = env.run(&["run", &name, "--image", IMAGE]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));
    // A dry run prints the pod.
    let yaml = env.ok(&[
        "run",
        "x",
        "--image",
        IMAGE,
        "--port=8080",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.contains("containerPort: 8080") && yaml.contains("run: x"),
        "{yaml}"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
}

/// The commands listed in a `--help` text's Commands section (without `help`).
fn commands_of(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_has_examples_and_create_refuses_what_exists() {
    let env = Env::new();
    let top = env.ok(&["--help"]);
    let commands = commands_of(&top);
    assert!(commands.contains(&"wait".to_string()), "{top}");
    for c in &commands {
        let help = env.ok(&[c, "--help"]);
        let subs = commands_of(&help);
        if subs.is_empty() {
            assert!(
                help.contains("\nExamples:\n"),
                "peapod {c} --help has no examples"
            );
        }
        for s in subs {
            let help = env.ok(&[c, &s, "--help"]);
            assert!(
                help.contains("\nExamples:\n"),
                "peapod {c} {s} --help has no examples"
            );
        }
    }
    let name = format!("created-{}", unique());
    let yaml = pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        ),
    );
    let file = env.path().join("create.yaml");
    std::fs::write(&file, yaml).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        env.ok(&["create", "-f", f]),
        format!("pod/{name} created\n")
    );
    let again = env.run(&["create", "-f", f]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));
    // apply of the same file is fine: unchanged.
    assert_eq!(
        env.ok(&["apply", "-f", f]),
        format!("pod/{name} unchanged\n")
    );
    // Several types at once.
    let both = env.ok(&["get", "pods,cm"]);
    assert!(both.contains(&name), "{both}");
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn port_forward_reaches_the_pods_loopback() {
    use std::io::{BufRead, Read, Write};
    let env = Env::new();
    let name = format!("pf-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: web\n    image: {IMAGE}\n    command: [sh, -c, 'mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']\n    ports: [{{name: http, containerPort: 8080}}]\n"
        ),
    ));
    env.wait_phase(&name, "Running");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peapod"))
        .arg("--config")
        .arg(&env.config)
        .args(["port-forward", &format!("pod/{name}"), ":http"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(first.ends_with("-> 8080"), "{first}");
    let mut body = String::new();
    for _ in 0..50 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        body.clear();
        let _ = s.read_to_string(&mut body);
        if body.contains("forwarded") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        body.starts_with("HTTP/1.") && body.ends_with("forwarded\n"),
        "{body}"
    );
    env.ok(&["delete", "pod", &name, "--force"]);
}

#[test]
fn cp_both_ways_through_tar() {
    let env = Env::new();
    let name = format!("cp-{}", unique());
    env.apply_ok(&pod_yaml(
        &name,
        &format!(
            "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [sleep, '3600']\n"
        ),
    ));
    env.wait_phase(&name, "Running");
    // A directory in, then read inside.
    let src = env.path().join("site");
    std::fs::create_dir_all(src.join("css")).unwrap();
    std::fs::write(src.join("index.html"), "hello\n").unwrap();
    std::fs::write(src.join("css/a.css"), "body{}\n").unwrap();
    env.ok(&["cp", src.to_str().unwrap(), &format!("{name}:/tmp/www")]);
    let (code, out) = env.exec(
        &name,
        "app",
        &["sh", "-c", "cat /tmp/www/index.html /tmp/www/css/a.css"],
    );
    assert_eq!((code, out.as_str()), (0, "hello\nbody{}\n"));
    // A file out, under a new name.
    let dest = env.path().join("hostname.copy");
    env.ok(&[
        "cp",
        &format!("{name}:/etc/hostname"),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap().trim(), name);
    // A directory out.
    let back = env.path().join("back");
    env.ok(&["cp", &format!("{name}:/tmp/www"), back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("css/a.css")).unwrap(),
        "body{}\n"
    );
    // Nothing there: an error.
    let out = env.run(&["cp", &format!("{name}:/nope"), back.to_str().unwrap()]);
    assert!(!out.status.success());
    env.ok(&["delete", "pod", &name, "--force"]);
}
