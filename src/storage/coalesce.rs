//! Folds the writes of one batch that touch the same row into one before they reach the store.
//! Every call and activeflow write carries its row as it stands (an upsert of the whole header),
//! so within one transaction only the last state of a row matters: a short call's `ringing`,
//! `answered` and `ended` rows become one `ended` insert, and an activeflow's progress and its
//! end become one upsert with the union of their actions. The transaction commits the same
//! final state as applying every write in order, with a fraction of the statements (and of the
//! index changes: a row born ended never enters the `not ended` indexes).
//!
//! Writes of any other kind (deletes, flows, purges, barriers) keep their place and end the
//! folding: a row written after a delete is a new write, never merged into one before it.

use std::collections::HashMap;

use super::model::{ActionRow, Write};

/// Which table a folded row lives in, with its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RowKey {
    Call(u64),
    Activeflow(u64),
}

/// The batch with every run of call and activeflow writes folded per row, in first-seen order.
pub(super) fn coalesce(batch: &mut Vec<Write>) {
    if batch.len() < 2 {
        return;
    }
    let mut out: Vec<Write> = Vec::with_capacity(batch.len());
    let mut seen: HashMap<RowKey, usize> = HashMap::with_capacity(batch.len());
    for write in batch.drain(..) {
        let key = match &write {
            Write::Call(row) => RowKey::Call(row.sequence),
            Write::Activeflow { row, .. } => RowKey::Activeflow(row.sequence),
            _ => {
                seen.clear();
                out.push(write);
                continue;
            }
        };
        match seen.get(&key) {
            Some(&at) => fold(&mut out[at], write),
            None => {
                seen.insert(key, out.len());
                out.push(write);
            }
        }
    }
    *batch = out;
}

/// Folds `later` (the same row, written after) into `kept`. An ended header is final: the store
/// never turns an ended row back (its upserts say so), and neither does folding.
fn fold(kept: &mut Write, later: Write) {
    match (kept, later) {
        (Write::Call(kept), Write::Call(later)) if kept.status != "ended" => *kept = later,
        (
            Write::Activeflow { row, actions },
            Write::Activeflow {
                row: later_row,
                actions: later_actions,
            },
        ) => {
            if row.status != "ended" {
                *row = later_row;
            }
            merge_actions(actions, later_actions);
        }
        // An ended call row stays; keys are per table, so the kinds always match.
        _ => {}
    }
}

/// The union by index; a later body of the same index replaces the earlier (as the store's
/// `INSERT OR REPLACE` would).
fn merge_actions(kept: &mut Vec<ActionRow>, later: Vec<ActionRow>) {
    for action in later {
        match kept.iter_mut().rev().find(|a| a.index == action.index) {
            Some(slot) => *slot = action,
            None => kept.push(action),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::model::{ActiveflowRow, CallRow};

    fn call(sequence: u64, status: &'static str) -> Write {
        Write::Call(CallRow {
            id: format!("c{sequence}"),
            sequence,
            sip_call_id: "x".into(),
            direction: "incoming",
            source: "s".into(),
            destination: "d".into(),
            peer: "p".into(),
            status,
            end_cause: (status == "ended").then(|| "normal".into()),
            end_code: None,
            codec: None,
            tm_create: "t0".into(),
            tm_answer: (status != "ringing").then(|| "t1".into()),
            tm_end: (status == "ended").then(|| "t2".into()),
        })
    }

    fn activeflow(sequence: u64, status: &'static str, actions: &[(usize, &str)]) -> Write {
        Write::Activeflow {
            row: ActiveflowRow {
                id: format!("a{sequence}"),
                sequence,
                flow_id: "f".into(),
                status,
                end_reason: (status == "ended").then_some("hangup"),
                reference_type: "call",
                reference_id: "c".into(),
                reference_activeflow_id: None,
                on_complete_flow_id: None,
                forward_action_id: None,
                webhook_uri: None,
                webhook_method: None,
                current_action: None,
                variables: None,
                tm_create: "t0".into(),
                tm_update: "t1".into(),
                tm_end: None,
            },
            actions: actions
                .iter()
                .map(|(index, body)| ActionRow {
                    index: *index,
                    body: body.to_string(),
                })
                .collect(),
        }
    }

    fn statuses(batch: &[Write]) -> Vec<String> {
        batch
            .iter()
            .map(|w| match w {
                Write::Call(r) => format!("call {} {}", r.sequence, r.status),
                Write::Activeflow { row, actions } => {
                    let idx: Vec<String> = actions
                        .iter()
                        .map(|a| format!("{}={}", a.index, a.body))
                        .collect();
                    format!("af {} {} [{}]", row.sequence, row.status, idx.join(","))
                }
                Write::DeleteActiveflow(id) => format!("delete {id}"),
                Write::Barrier => "barrier".into(),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_short_call_and_its_activeflow_become_one_write_each() {
        let mut batch = vec![
            call(1, "ringing"),
            activeflow(7, "running", &[(0, "answer"), (1, "sleep")]),
            call(1, "answered"),
            call(2, "ringing"),
            activeflow(7, "ended", &[(1, "sleep+result"), (2, "hangup")]),
            call(1, "ended"),
        ];
        coalesce(&mut batch);
        assert_eq!(
            statuses(&batch),
            [
                "call 1 ended",
                "af 7 ended [0=answer,1=sleep+result,2=hangup]",
                "call 2 ringing"
            ]
        );
    }

    #[test]
    fn an_ended_row_is_never_replaced_by_a_later_progress_write() {
        let mut batch = vec![call(1, "ended"), call(1, "answered")];
        coalesce(&mut batch);
        assert_eq!(statuses(&batch), ["call 1 ended"]);
        let mut batch = vec![activeflow(3, "ended", &[]), activeflow(3, "running", &[])];
        coalesce(&mut batch);
        assert_eq!(statuses(&batch), ["af 3 ended []"]);
    }

    #[test]
    fn other_writes_keep_their_place_and_are_never_folded_across() {
        let mut batch = vec![
            activeflow(4, "running", &[(0, "a")]),
            Write::DeleteActiveflow("a4".into()),
            activeflow(4, "running", &[(1, "b")]),
            Write::Barrier,
            call(5, "ringing"),
        ];
        coalesce(&mut batch);
        assert_eq!(
            statuses(&batch),
            [
                "af 4 running [0=a]",
                "delete a4",
                "af 4 running [1=b]",
                "barrier",
                "call 5 ringing"
            ]
        );
    }
}
