//! The reference's search order (`match_all` of the `hardware` package),
//! replayed on the search state of the parent module.
//!
//! A call takes the spec lines from some line on, in file order. Each line
//! takes the first unused hardware line equal to it, else the first one it
//! fits, in the call's list order. A line that binds a new variable is a
//! retry point. When a line finds nothing, the call retries its points,
//! latest first: a retry is a new call, one level deeper, starting again at
//! that spec line with the bindings it had then, and with the hardware line
//! it had taken moved to the end of the list (for it and every later line).
//! A call at level 50 fails at once.
//!
//! A retry whose remaining spec lines cannot all be paired at all (the
//! checks of the parent module, which only reject such states) would fail
//! in the reference too, and is skipped: the answer stays the reference's.

use indexmap::IndexMap;

use super::{hw_text, spec_text, Search, Tracer, NONE};
use crate::matcher::Match;

/// Longest candidate list looked at after each step for the shortcut.
const HINT_MAX: usize = 64;

/// Dead ends after which retries are also checked for shared variables.
const DEEP_REPLAY_AFTER: usize = 4096;

/// The reference's `level == 50` test.
const LEVEL_CAP: usize = 50;

/// Units of work after which the replay is abandoned for the complete
/// search (a few hundred milliseconds).
const EMULATION_WORK: usize = 1 << 23;

pub(in crate::matcher) enum Outcome {
    Found(Match),
    /// The reference finds no match.
    Failed,
    /// The replay was stopped, for the reason given.
    Abandoned(&'static str),
    Over,
}

/// How one call ended.
enum Ended {
    Found,
    Failed,
    Abandoned(&'static str),
    Over,
}

/// Bindings in the reference's order: `(variable, value)`.
type Snapshot<'h> = Vec<(usize, &'h str)>;

/// A Python dictionary as `(key, value)` pairs in insertion order, for a
/// few keys.
type SmallDict<'a> = Vec<(&'a str, &'a str)>;

/// Most variables for which [`SmallDict`] is used (its updates are linear).
const SMALL_DICT: usize = 32;

/// `dict[key] = value`: in place when present, else at the end.
fn small_set<'a>(dict: &mut SmallDict<'a>, key: &'a str, value: &'a str) {
    match dict.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => dict.push((key, value)),
    }
}

impl<'h, T: Tracer> Search<'_, 'h, T> {
    /// Replays the reference's search from a fresh state; the state is
    /// fresh again afterwards unless a match was found.
    pub(in crate::matcher) fn emulate(&mut self) -> Outcome {
        let mut chain = Vec::new();
        match self.call(0, 0, &mut chain) {
            Ended::Found => Outcome::Found(self.reference_result(&chain)),
            Ended::Failed => Outcome::Failed,
            Ended::Abandoned(why) => Outcome::Abandoned(why),
            Ended::Over => Outcome::Over,
        }
    }

    /// Counts work of the replay; `Some` when it must stop.
    fn emulation_spend(&mut self, units: usize) -> Option<Ended> {
        self.emulation_work += units;
        if self.spend(units) {
            return Some(Ended::Over);
        }
        (self.emulation_work > EMULATION_WORK)
            .then_some(Ended::Abandoned("would take too long to replay"))
    }

    /// One `match_all` call: spec lines `start..` with the state as it is;
    /// on any ending but `Found` the state is as it was.
    fn call(&mut self, start: usize, level: usize, chain: &mut Vec<Snapshot<'h>>) -> Ended {
        let specs = self.specs;
        let hw = self.hw;
        if level == LEVEL_CAP {
            self.tracer
                .event(|| format!("  level {LEVEL_CAP}: the reference gives up this retry"));
            return Ended::Abandoned("reached its depth limit");
        }
        if level > 0 {
            // The line that blocked last is looked at first: it often
            // still has nothing, and the full check need not run.
            let quick = self.hint != NONE && self.hint >= start && !self.has_viable(self.hint);
            let blocked = quick || self.check_retry(start);
            if blocked {
                if self.over {
                    return Ended::Over;
                }
                self.dead_end();
                self.tracer.event(|| {
                    format!(
                        "  the retry of {} cannot succeed, skipped",
                        spec_text(specs, start)
                    )
                });
                return Ended::Failed;
            }
        }
        let n = specs.compiled.len();
        let mut points: Vec<(usize, usize)> = Vec::new();
        let mut i = start;
        let mut capped = false;
        while i < n {
            let (j, looked) = self.first_fit(i);
            if let Some(stop) = self.emulation_spend(looked + 1) {
                self.unwind(i, start);
                return stop;
            }
            if let Some(j) = j {
                self.tracer
                    .event(|| format!("try {} with {}", spec_text(specs, i), hw_text(hw, j)));
                if self.assign(i, j) {
                    points.push((i, j));
                }
                i += 1;
                if !self.doomed(i) {
                    continue;
                }
                // Every later line would be matched, then every retry of
                // them would fail: go straight to the retries from here.
                self.tracer.event(|| {
                    format!(
                        "  prune: {} has nothing left, the reference would fail further on",
                        spec_text(specs, self.hint)
                    )
                });
            } else {
                self.tracer.event(|| {
                    format!(
                        "{} has no hardware line left in the reference's order",
                        spec_text(specs, i)
                    )
                });
                self.hint = i;
            }
            self.dead_end();
            let snapshot: Snapshot<'h> = self
                .trail
                .iter()
                .filter_map(|&v| self.binding[v].map(|value| (v, value)))
                .collect();
            let mut top = i;
            while let Some((p, j)) = points.pop() {
                self.unwind(top, p);
                top = p;
                self.tracer.event(|| {
                    format!(
                        "retry {} at level {}, {} moved to the end",
                        spec_text(specs, p),
                        level + 1,
                        hw_text(hw, j)
                    )
                });
                self.rotate(j);
                let ended = self.call(p, level + 1, chain);
                match ended {
                    Ended::Found => {
                        chain.push(snapshot);
                        return Ended::Found;
                    }
                    Ended::Failed => self.unrotate(),
                    Ended::Abandoned("reached its depth limit") => {
                        // The reference's call fails there; go on like it.
                        capped = true;
                        self.unrotate();
                    }
                    other => {
                        self.unrotate();
                        self.unwind(top, start);
                        return other;
                    }
                }
            }
            self.unwind(top, start);
            return if capped {
                Ended::Abandoned("reached its depth limit")
            } else {
                Ended::Failed
            };
        }
        Ended::Found
    }

    /// Whether the state, with spec lines before `next` paired, has no
    /// complete pairing, as seen by a cheap look at the line that blocked
    /// last. Only used where the variables the reference reports do not
    /// depend on how it would go on from here (no `$$` variable, no spec
    /// line equal to a hardware line).
    fn doomed(&mut self, next: usize) -> bool {
        if !self.shortcut || self.hint == NONE || self.hint < next {
            return false;
        }
        let (start, end) = self.pool(self.hint);
        end - start <= HINT_MAX && !self.has_viable(self.hint)
    }

    /// Whether a retry from spec line `start` surely fails: the remaining
    /// lines cannot all get distinct consistent hardware lines; past
    /// [`DEEP_REPLAY_AFTER`] dead ends of the replay, also the shared
    /// variable check.
    fn check_retry(&mut self, start: usize) -> bool {
        if self.dead_ends < DEEP_REPLAY_AFTER {
            self.distinct(start).is_err()
        } else {
            self.propagate(start).is_err()
        }
    }

    /// Unassigns spec lines `to..from`, latest first.
    fn unwind(&mut self, from: usize, to: usize) {
        for d in (to..from).rev() {
            self.unassign(d);
        }
    }

    /// Moves hardware line `j` to the end of the list order.
    fn rotate(&mut self, j: usize) {
        if self.order_key.is_empty() {
            self.order_key = (0..self.hw.len()).collect();
        }
        let key = self.hw.len() + self.rotated.len();
        self.rotated.push((j, self.order_key[j]));
        self.order_key[j] = key;
    }

    /// Place of hardware line `j` in the list order.
    fn key(&self, j: usize) -> usize {
        if self.order_key.is_empty() {
            j
        } else {
            self.order_key[j]
        }
    }

    fn unrotate(&mut self) {
        if let Some((j, key)) = self.rotated.pop() {
            self.order_key[j] = key;
        }
    }

    /// The reference's choice for spec line `i`: the first unused line
    /// equal to it, else the first unused line it fits with the bindings,
    /// in list order. Also the number of lines looked at.
    fn first_fit(&mut self, i: usize) -> (Option<usize>, usize) {
        let n_hw = self.hw.len();
        let mut looked = 0;
        if self.has_exact[i] {
            let (start, end) = (self.cand_start[i], self.cand_start[i + 1]);
            let mut best: Option<usize> = None;
            for &j in &self.cand_data[start..end] {
                looked += 1;
                if !self.used[j]
                    && self.exact(i, j)
                    && best.is_none_or(|b| self.key(j) < self.key(b))
                {
                    best = Some(j);
                }
            }
            if best.is_some() {
                return (best, looked);
            }
        }
        let (start, end) = self.pool(i);
        for idx in start..end {
            let j = self.cand_data[idx];
            looked += 1;
            if self.key(j) < n_hw && !self.used[j] && self.consistent(i, j) {
                return (Some(j), looked);
            }
        }
        // Then the lines moved to the end, in the order they were moved.
        let (specs, hw) = (self.specs, self.hw);
        for (s, &(j, _)) in self.rotated.iter().enumerate() {
            looked += 1;
            if self.key(j) == n_hw + s
                && !self.used[j]
                && specs.compiled[i].fits_statically(&specs.lines[i], &hw[j])
                && self.consistent(i, j)
            {
                return (Some(j), looked);
            }
        }
        (None, looked)
    }

    /// [`Search::reference_result`] with few variables: the same steps on
    /// dictionaries kept as short vectors of borrowed texts, turned into
    /// maps at the end.
    fn reference_result_small(&self, chain: &[Snapshot<'h>]) -> Match {
        let vars_info = &self.specs.vars;
        let mut arr: SmallDict<'_> = self
            .trail
            .iter()
            .filter_map(|&v| self.binding[v].map(|value| (vars_info[v].key.as_str(), value)))
            .collect();
        let mut forced: SmallDict<'_> = Vec::new();
        let keys: Vec<&str> = arr.iter().map(|&(k, _)| k).collect();
        for key in keys {
            if let Some(name) = key.strip_prefix('$') {
                if let Some(at) = arr.iter().position(|&(k, _)| k == key) {
                    let value = arr[at].1;
                    small_set(&mut arr, name, value);
                    small_set(&mut forced, name, value);
                    if let Some(at) = arr.iter().position(|&(k, _)| k == key) {
                        arr.remove(at);
                    }
                }
            }
        }
        for snapshot in chain {
            let mut outer: SmallDict<'_> = snapshot
                .iter()
                .map(|&(v, value)| (vars_info[v].key.as_str(), value))
                .collect();
            for &(key, value) in &arr {
                small_set(&mut outer, key, value);
            }
            arr = outer;
        }
        let owned = |d: SmallDict<'_>| -> IndexMap<String, String> {
            d.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        Match {
            vars: owned(arr),
            forced: owned(forced),
            pairing: self.chosen.clone(),
            beyond_reference: false,
        }
    }

    /// The reference's variables: those of the call that matched, with
    /// `$$` ones renamed, copied over the variables each enclosing call
    /// held when it started its retries (innermost first in `chain`).
    pub(in crate::matcher) fn reference_result(&self, chain: &[Snapshot<'h>]) -> Match {
        let vars_info = &self.specs.vars;
        if chain.is_empty() && vars_info.iter().all(|v| !v.forced) {
            // Nothing to rename or carry over: the bindings as they are.
            return self.result();
        }
        if vars_info.len() <= SMALL_DICT {
            return self.reference_result_small(chain);
        }
        let mut arr: IndexMap<String, String> = self
            .trail
            .iter()
            .filter_map(|&v| {
                self.binding[v].map(|value| (vars_info[v].key.clone(), value.to_owned()))
            })
            .collect();
        let mut forced = IndexMap::new();
        let keys: Vec<String> = arr.keys().cloned().collect();
        for key in keys {
            if let Some(name) = key.strip_prefix('$') {
                if let Some(value) = arr.get(&key).cloned() {
                    arr.insert(name.to_owned(), value.clone());
                    forced.insert(name.to_owned(), value);
                    arr.shift_remove(&key);
                }
            }
        }
        for snapshot in chain {
            let mut outer: IndexMap<String, String> = snapshot
                .iter()
                .map(|&(v, value)| (vars_info[v].key.clone(), value.to_owned()))
                .collect();
            for (key, value) in arr {
                outer.insert(key, value);
            }
            arr = outer;
        }
        Match {
            vars: arr,
            forced,
            pairing: self.chosen.clone(),
            beyond_reference: false,
        }
    }
}
