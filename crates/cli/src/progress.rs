//! The progress of a pull: one line per layer redrawn in place on a terminal (bytes, rate,
//! time left), plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use peapod_image::{Digest, Progress, ProgressFn};

use crate::image::human_size;

#[derive(Default)]
struct Layer {
    done: u64,
    total: u64,
    state: &'static str,
    started: Option<Instant>,
}

struct State {
    tty: bool,
    order: Vec<Digest>,
    layers: HashMap<Digest, Layer>,
    drawn: usize,
}

/// Shows a pull's progress on standard output.
pub struct Display {
    state: Arc<Mutex<State>>,
}

impl Display {
    /// A display for pulling `name`.
    pub fn new(name: &str) -> Display {
        let tty = std::io::stdout().is_terminal();
        println!("Pulling {name}");
        Display {
            state: Arc::new(Mutex::new(State {
                tty,
                order: Vec::new(),
                layers: HashMap::new(),
                drawn: 0,
            })),
        }
    }

    /// The callback to hand to the pull.
    pub fn callback(&self) -> ProgressFn {
        let state = self.state.clone();
        Arc::new(move |p: &Progress| state.lock().unwrap().update(p))
    }

    /// Draws the final state.
    pub fn finish(self) {
        let mut s = self.state.lock().unwrap();
        if s.tty {
            s.draw();
        }
    }
}

impl State {
    fn update(&mut self, p: &Progress) {
        let plain = |d: &Digest, what: String| println!("{}: {what}", short(d));
        match p {
            Progress::Resolved { manifest, layers } => {
                if !self.tty {
                    println!("Manifest {manifest}: {} layer(s)", layers.len());
                }
                for (d, size) in layers {
                    if !self.layers.contains_key(d) {
                        self.order.push(d.clone());
                        self.layers.insert(
                            d.clone(),
                            Layer {
                                total: *size,
                                state: "Waiting",
                                ..Layer::default()
                            },
                        );
                    }
                }
            }
            Progress::Exists(d) => {
                self.set(d, "Already exists");
                if !self.tty {
                    plain(d, "Already exists".into());
                }
            }
            Progress::Downloading { layer, done, total } => {
                let l = self.layers.entry(layer.clone()).or_default();
                l.started.get_or_insert_with(Instant::now);
                l.done = *done;
                l.total = *total;
                l.state = "Downloading";
            }
            Progress::Downloaded(d) => {
                self.set(d, "Verified");
                if !self.tty {
                    let l = &self.layers[d];
                    let secs = l.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    plain(
                        d,
                        format!("Downloaded {} in {secs:.1}s", human_size(l.total)),
                    );
                }
            }
            Progress::Unpacked(d) => {
                if self
                    .layers
                    .get(d)
                    .is_some_and(|l| l.state != "Already exists")
                {
                    self.set(d, "Pull complete");
                    if !self.tty {
                        plain(d, "Unpacked".into());
                    }
                }
            }
        }
        if self.tty {
            self.draw();
        }
    }

    fn set(&mut self, d: &Digest, state: &'static str) {
        self.layers.entry(d.clone()).or_default().state = state;
    }

    fn draw(&mut self) {
        let mut out = std::io::stdout().lock();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for d in &self.order {
            let l = &self.layers[d];
            let mut line = format!("{}: {:<15}", short(d), l.state);
            if l.state == "Downloading" {
                let secs = l.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                let rate = if secs > 0.0 {
                    l.done as f64 / secs
                } else {
                    0.0
                };
                let eta = if rate > 0.0 && l.total > l.done {
                    format!("{:.0}s", (l.total - l.done) as f64 / rate)
                } else {
                    "-".into()
                };
                line.push_str(&format!(
                    " {:>9}/{:<9} {:>9}/s  ETA {eta}",
                    human_size(l.done),
                    human_size(l.total),
                    human_size(rate as u64)
                ));
            }
            let _ = writeln!(out, "\x1b[2K{line}");
        }
        self.drawn = self.order.len();
        let _ = out.flush();
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}
