//! The pod's status by the kubelet's rules (`generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use peapod_runtime::{ContainerState as RtState, ContainerStatus as RtStatus};
use peapod_types::api::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use peapod_types::phase::{conditions, is_sidecar, pod_phase, qos_class};

use crate::worker::PodWorker;

fn time(s: Option<&str>) -> Option<Time> {
    s.and_then(|s| s.parse::<jiff::Timestamp>().ok()).map(Time)
}

/// The kubelet's limits: a message file is read up to 4 KiB; a log fallback takes the last
/// 80 lines, at most 2 KiB.
const MAX_MESSAGE: usize = 4096;
const MAX_LOG_LINES: usize = 80;
const MAX_LOG_BYTES: usize = 2048;

/// What all of a pod's termination messages may hold together.
const POD_MESSAGE_LIMIT: usize = 12 * 1024;

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `state.terminated.message`: the termination message file, else (with
/// `FallbackToLogsOnError` and a failure) the end of the log, else the runtime's message.
fn termination_message(c: &Container, s: &RtStatus) -> String {
    let path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    let mut msg = String::new();
    if let Some(m) = s.mounts.iter().find(|m| m.container_path == path)
        && let Ok(data) = std::fs::read(&m.host_path)
    {
        msg = String::from_utf8_lossy(&data[..data.len().min(MAX_MESSAGE)]).into_owned();
    }
    let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if msg.is_empty() && fallback && s.exit_code != 0 {
        let log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
        let mut text = String::new();
        for l in log.lines().filter_map(peapod_runtime::logs::parse) {
            text.push_str(l.text);
            if !l.partial {
                text.push('\n');
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(MAX_LOG_LINES)..].join("\n");
        let start = tail.len().saturating_sub(MAX_LOG_BYTES);
        let start = (start..=tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(tail.len());
        msg = tail[start..].to_string();
    }
    if msg.is_empty() {
        s.message.clone()
    } else {
        msg
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

impl PodWorker {
    /// `state.terminated` of an exited instance; its message is read once, then kept.
    fn terminated(&self, c: &Container, s: &RtStatus) -> ContainerState {
        let message = self
            .messages
            .lock()
            .unwrap()
            .entry(s.id.clone())
            .or_insert_with(|| termination_message(c, s))
            .clone();
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: s.exit_code,
                signal: s.signal,
                reason: Some(s.reason.clone()).filter(|r| !r.is_empty()),
                message: Some(message).filter(|m| !m.is_empty()),
                started_at: time(s.started_at.as_deref()),
                finished_at: time(s.finished_at.as_deref()),
                container_id: Some(format!("peapod://{}", s.id)),
            }),
            ..Default::default()
        }
    }

    fn api_container_status(
        &self,
        c: &Container,
        default_reason: &str,
        init: bool,
    ) -> ContainerStatus {
        let latest = self.latest(&c.name);
        let slot = self.slots.get(&c.name);
        let wait = slot.and_then(|s| s.waiting.clone());
        let restart_count = slot.map_or(0, |s| s.created.saturating_sub(1)) as i32;
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restart_count,
            started: Some(false),
            ..Default::default()
        };
        let Some(s) = latest else {
            let (reason, msg) =
                wait.map_or((default_reason.to_string(), None), |(r, m)| (r, Some(m)));
            st.state = Some(waiting(&reason, msg));
            return st;
        };
        st.image_id = s.image_ref.clone();
        st.container_id = Some(format!("peapod://{}", s.id));
        match s.state {
            RtState::Running if self.hook_running.as_deref() == Some(s.id.as_str()) => {
                st.state = Some(waiting("ContainerCreating", None));
                st.last_state = self.previous(&c.name).map(|p| self.terminated(c, &p));
            }
            RtState::Running => {
                st.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: time(s.started_at.as_deref()),
                    }),
                    ..Default::default()
                });
                st.last_state = self.previous(&c.name).map(|p| self.terminated(c, &p));
                st.started = Some(self.started(Some(&s)));
                st.ready = (!init || is_sidecar(c)) && self.probed_ready(&s);
            }
            RtState::Created => {
                st.state = Some(waiting("ContainerCreating", None));
                st.last_state = self.previous(&c.name).map(|p| self.terminated(c, &p));
            }
            RtState::Exited | RtState::Unknown => {
                let mut s = s;
                if s.state == RtState::Unknown {
                    s.exit_code = 137;
                    s.reason = "ContainerStatusUnknown".into();
                    s.message =
                        "The container could not be located when the pod was terminated".into();
                }
                match wait {
                    Some((reason, msg)) => {
                        st.state = Some(waiting(&reason, Some(msg)));
                        st.last_state = Some(self.terminated(c, &s));
                    }
                    None => {
                        st.state = Some(self.terminated(c, &s));
                        st.last_state = self.previous(&c.name).map(|p| self.terminated(c, &p));
                    }
                }
                st.ready = init && !is_sidecar(c) && s.exit_code == 0;
            }
        }
        st
    }

    fn container_statuses(&self) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
        let spec = self.pod.spec.as_ref().expect("spec");
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let default = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let inits = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| self.api_container_status(c, default, true))
            .collect();
        let apps = spec
            .containers
            .iter()
            .map(|c| self.api_container_status(c, default, false))
            .collect();
        (inits, apps)
    }

    /// The pod phase now (terminal phases stick).
    pub(crate) fn phase(&self) -> &'static str {
        if let Some(p) = self.terminal_phase {
            return p;
        }
        let (mut all, apps) = self.container_statuses();
        all.extend(apps);
        pod_phase(self.pod.spec.as_ref().expect("spec"), &all, false)
    }

    /// The full `PodStatus`.
    pub(crate) fn status(&mut self) -> PodStatus {
        let (mut inits, mut apps) = self.container_statuses();
        // The pod's termination messages share 12 KiB, split evenly among its containers
        // (the status manager's normalizeStatus).
        let per = POD_MESSAGE_LIMIT / (inits.len() + apps.len()).max(1);
        for st in inits.iter_mut().chain(apps.iter_mut()) {
            for state in [st.state.as_mut(), st.last_state.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(t) = state.terminated.as_mut()
                    && let Some(m) = t.message.as_mut()
                {
                    truncate_utf8(m, per);
                }
            }
        }
        let phase = self.phase();
        let spec = self.pod.spec.clone().expect("spec");
        let sandbox_ready = self
            .sandbox_id
            .as_ref()
            .and_then(|id| self.rt.pod_sandbox_status(id).ok())
            .is_some_and(|s| s.state == peapod_runtime::SandboxState::Ready);
        let now = jiff::Timestamp::now();
        let conds: Vec<PodCondition> = conditions(&spec, &inits, &apps, phase, sandbox_ready)
            .into_iter()
            .map(|c| {
                let entry = self.conditions.entry(c.type_).or_insert((c.status, now));
                if entry.0 != c.status {
                    *entry = (c.status, now);
                }
                PodCondition {
                    type_: c.type_.to_string(),
                    status: if c.status { "True" } else { "False" }.to_string(),
                    reason: c.reason.map(str::to_string),
                    message: c.message,
                    last_transition_time: Some(Time(entry.1)),
                    last_probe_time: None,
                    observed_generation: None,
                }
            })
            .collect();
        let pod_ips: Vec<PodIP> = self
            .pod_ips()
            .into_iter()
            .filter(|ip| !ip.is_empty())
            .map(|ip| PodIP { ip })
            .collect();
        let pod_ip = pod_ips.first().map(|p| p.ip.clone()).unwrap_or_default();
        let host_ip = self.cfg.host_ip.clone();
        let (reason, message) = self.status_reason.clone().unzip();
        PodStatus {
            phase: Some(phase.to_string()),
            reason,
            message,
            conditions: Some(conds),
            host_ip: Some(host_ip.clone()).filter(|s| !s.is_empty()),
            host_ips: Some(vec![HostIP {
                ip: host_ip.clone(),
            }])
            .filter(|_| !host_ip.is_empty()),
            pod_ip: Some(pod_ip.clone()).filter(|s| !s.is_empty()),
            pod_ips: Some(pod_ips).filter(|v| !v.is_empty()),
            start_time: Some(Time(self.start_time)),
            qos_class: Some(qos_class(&spec).to_string()),
            init_container_statuses: Some(inits).filter(|v| !v.is_empty()),
            container_statuses: Some(apps),
            ..Default::default()
        }
    }
}
