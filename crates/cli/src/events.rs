//! `peapod get events`: the pods' events as kubectl lists them (`-o wide|json|yaml`, `-w`).

use anyhow::{Result, bail};
use peapod_shim::{Event, PodHandle};
use peapod_types::config::Config;

use crate::get::{GetArgs, WATCH_INTERVAL, matching, print_object, selected};
use crate::util::{age, column_widths, format_row, print_table};

/// Every event of `pods` with its pod's name, oldest first.
fn events_of(pods: &[PodHandle]) -> Vec<(String, String, usize, Event)> {
    let mut all = Vec::new();
    for p in pods {
        for (i, e) in p
            .state
            .as_ref()
            .map(|s| s.events.clone())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            all.push((p.uid.clone(), p.name().to_string(), i, e));
        }
    }
    all.sort_by(|a, b| a.3.last_timestamp.cmp(&b.3.last_timestamp));
    all
}

fn event_row(name: &str, e: &Event, wide: bool) -> Vec<String> {
    let time = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .ok()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
    };
    let mut row = vec![
        age(time(&e.last_timestamp).as_ref()),
        e.type_.clone(),
        e.reason.clone(),
        format!("pod/{name}"),
    ];
    if wide {
        row.extend([
            e.field_path.clone(),
            e.source.clone(),
            e.message.clone(),
            age(time(&e.first_timestamp).as_ref()),
            e.count.to_string(),
        ]);
    } else {
        row.push(e.message.clone());
    }
    row
}

/// An event as the API shows one (`v1 Event`).
fn event_object(h: &PodHandle, i: usize, e: &Event) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{i}", h.name()), "namespace": h.namespace()},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": h.name(), "namespace": h.namespace(),
            "uid": h.uid, "fieldPath": Some(&e.field_path).filter(|f| !f.is_empty()),
        },
        "type": e.type_, "reason": e.reason, "message": e.message, "count": e.count,
        "firstTimestamp": e.first_timestamp, "lastTimestamp": e.last_timestamp,
        "source": {"component": e.source},
    })
}

pub(crate) fn get_events(cfg: &Config, args: &GetArgs) -> Result<i32> {
    let pods = selected(cfg, args)?;
    if let Some("json" | "yaml") = args.output.as_deref() {
        let mut items = Vec::new();
        for h in &pods {
            for (i, e) in h.state.iter().flat_map(|s| s.events.iter()).enumerate() {
                items.push(event_object(h, i, e));
            }
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}});
        print_object(args, &list)?;
        return Ok(0);
    }
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some(other) => {
            bail!("unsupported output format {other:?} for events: use wide, yaml or json")
        }
    };
    let mut header = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT"];
    if wide {
        header.extend(["SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT"]);
    } else {
        header.push("MESSAGE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let all = events_of(&pods);
    // Seen: (pod UID, index) -> count.
    let mut seen: std::collections::HashMap<(String, usize), u32> = Default::default();
    for (uid, name, i, e) in &all {
        rows.push(event_row(name, e, wide));
        seen.insert((uid.clone(), *i), e.count);
    }
    if rows.len() == 1 && !args.watch {
        eprintln!("No events found in {} namespace.", args.namespace);
        return Ok(0);
    }
    print_table(&rows);
    if !args.watch {
        return Ok(0);
    }
    // -w: each new event, and each repeat of one (its count went up), as it happens.
    let widths = column_widths(&rows);
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let pods = matching(cfg, args);
        for (uid, name, i, e) in events_of(&pods) {
            let k = (uid, i);
            if seen.get(&k) == Some(&e.count) {
                continue;
            }
            seen.insert(k, e.count);
            println!("{}", format_row(&event_row(&name, &e, wide), &widths));
        }
        use std::io::Write;
        if std::io::stdout().flush().is_err() {
            return Ok(0);
        }
    }
}
