//! The registry and one room's tick, without sockets: frames pushed through the links.

use super::mix::{Frame, FRAME_SAMPLES};
use super::*;

fn tone(v: i16) -> Box<Frame> {
    Box::new([v; FRAME_SAMPLES])
}

#[actix_rt::test]
async fn a_room_mixes_the_others_for_each_and_drops_a_leaver() {
    let confs = Conferences::new();
    let a = confs.join("room-1", "a".into(), "fa".into(), None).unwrap();
    let b = confs.join("room-1", "b".into(), "fb".into(), None).unwrap();
    let c = confs.join("room-1", "c".into(), "fc".into(), None).unwrap();
    let (mut a, mut b, mut c) = (a.take().unwrap(), b.take().unwrap(), c.take().unwrap());
    a.to_room.try_send(tone(1000)).unwrap();
    b.to_room.try_send(tone(200)).unwrap();
    // c is silent: it sends nothing and hears both.
    let room = confs.get("room-1").unwrap();
    let report = room.tick();
    assert_eq!(report.remaining, 3);
    assert_eq!(*a.from_room.try_recv().unwrap(), [200; FRAME_SAMPLES]);
    assert_eq!(*b.from_room.try_recv().unwrap(), [1000; FRAME_SAMPLES]);
    assert_eq!(*c.from_room.try_recv().unwrap(), [1200; FRAME_SAMPLES]);
    // A muted participant is heard by no one.
    confs.set_muted("room-1", "a", true).unwrap();
    a.to_room.try_send(tone(1000)).unwrap();
    b.to_room.try_send(tone(200)).unwrap();
    room.tick();
    assert_eq!(*c.from_room.try_recv().unwrap(), [200; FRAME_SAMPLES]);
    assert_eq!(*a.from_room.try_recv().unwrap(), [200; FRAME_SAMPLES]);
    assert!(b.from_room.try_recv().is_err(), "b hears nobody");
    // c's session ends (hang-up): the next tick drops it.
    drop(c);
    let report = room.tick();
    assert_eq!(report.left.len(), 1);
    assert_eq!(report.left[0].0.call_id, "c");
    assert_eq!(room.participants().len(), 2);
}

#[actix_rt::test]
async fn kick_and_delete_say_why_and_close_the_link() {
    let confs = Conferences::new();
    let a = confs.join("r", "a".into(), "fa".into(), None).unwrap();
    let b = confs.join("r", "b".into(), "fb".into(), None).unwrap();
    let (mut a, mut b) = (a.take().unwrap(), b.take().unwrap());
    confs.kick("r", "a").unwrap();
    assert_eq!(a.leave.get(), Some(&LeaveReason::Kicked));
    assert!(matches!(
        a.from_room.try_recv(),
        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    ));
    assert!(matches!(
        confs.kick("r", "a"),
        Err(ConferenceError::NoParticipant { .. })
    ));
    confs.delete("r").unwrap();
    assert_eq!(b.leave.get(), Some(&LeaveReason::Deleted));
    assert!(b.from_room.try_recv().is_err());
    assert_eq!(
        confs.get("r").unwrap_err(),
        ConferenceError::NotFound("r".into())
    );
    assert!(confs.delete("r").is_err());
}

#[actix_rt::test]
async fn bounds_and_ids_are_checked() {
    let confs = Conferences::new();
    assert!(matches!(
        confs.join("bad id", "a".into(), "f".into(), None),
        Err(ConferenceError::BadId(_))
    ));
    assert!(matches!(
        confs.join(&"x".repeat(MAX_ID_LEN + 1), "a".into(), "f".into(), None),
        Err(ConferenceError::BadId(_))
    ));
    let mut links = Vec::new();
    for i in 0..MAX_PARTICIPANTS {
        links.push(confs.join("full", i.to_string(), "f".into(), None).unwrap());
    }
    assert_eq!(
        confs
            .join("full", "late".into(), "f".into(), None)
            .unwrap_err(),
        ConferenceError::Full("full".into())
    );
    let made = confs.create("board".into()).unwrap();
    assert!(valid_id(&made.id));
    assert_eq!(confs.list().len(), 2);
    assert_eq!(
        confs.create("n".repeat(MAX_NAME_LEN + 1)).unwrap_err(),
        ConferenceError::NameTooLong
    );
}

#[actix_rt::test]
async fn a_transient_room_goes_when_empty_and_an_api_room_stays() {
    let confs = Conferences::new();
    let a = confs.join("t", "a".into(), "f".into(), None).unwrap();
    drop(a.take());
    let room = confs.get("t").unwrap();
    assert_eq!(room.tick().remaining, 0);
    assert!(confs.stop_if_empty(&room));
    assert!(confs.get("t").is_err());
    let kept = confs.create(String::new()).unwrap();
    let b = confs.join(&kept.id, "b".into(), "f".into(), None).unwrap();
    drop(b.take());
    assert_eq!(kept.tick().remaining, 0);
    assert!(confs.stop_if_empty(&kept));
    assert!(confs.get(&kept.id).is_ok());
}

#[actix_rt::test]
async fn a_join_never_finds_a_closed_room() {
    // The last participant of a one-person room leaves: the room goes with its mixing task.
    let confs = Conferences::new();
    let a = confs.join("one", "a".into(), "f".into(), None).unwrap();
    drop(a.take());
    let room = confs.get("one").unwrap();
    room.tick();
    assert!(confs.stop_if_empty(&room));
    // Closed and out of the map at once (the same lock): a new caller gets a new room.
    assert!(room.lock().closed);
    assert!(confs.get("one").is_err());
    let b = confs.join("one", "b".into(), "f".into(), None).unwrap();
    let again = confs.get("one").unwrap();
    assert!(!Arc::ptr_eq(&room, &again));
    // A closed room still in the map (the window before the fix) is replaced, not NotFound.
    again.lock().closed = true;
    let c = confs.join("one", "c".into(), "f".into(), None).unwrap();
    let fresh = confs.get("one").unwrap();
    assert!(!Arc::ptr_eq(&again, &fresh));
    assert_eq!(fresh.participants().len(), 1);
    assert_eq!(
        confs.count.load(Ordering::Relaxed),
        1,
        "one room slot in use"
    );
    drop((b, c));
}

#[actix_rt::test]
async fn kick_or_mute_of_a_participant_whose_call_ended_is_not_found() {
    let confs = Conferences::new();
    let a = confs.join("r", "a".into(), "fa".into(), None).unwrap();
    let b = confs.join("r", "b".into(), "fb".into(), None).unwrap();
    let _b = b.take().unwrap();
    // A's call ends (its session drops its ends); the room's tick has not run yet.
    let a_ends = a.take().unwrap();
    drop(a_ends);
    assert!(matches!(
        confs.kick("r", "a"),
        Err(ConferenceError::NoParticipant { .. })
    ));
    let room = confs.get("r").unwrap();
    assert_eq!(room.participants().len(), 1, "A is gone, not kicked");
    let report = room.tick();
    assert!(report.left.is_empty(), "A left once");
    // The same for mute.
    let c = confs.join("r", "c".into(), "fc".into(), None).unwrap();
    drop(c.take());
    assert!(matches!(
        confs.set_muted("r", "c", true),
        Err(ConferenceError::NoParticipant { .. })
    ));
    assert_eq!(room.participants().len(), 1);
    assert!(confs.set_muted("r", "b", true).unwrap().muted);
}

#[actix_rt::test]
async fn the_room_bound_is_exact_and_freed_rooms_count_again() {
    let confs = Conferences::with_max_rooms(3);
    let api = confs.create("kept".into()).unwrap();
    let a = confs.join("t1", "a".into(), "f".into(), None).unwrap();
    let _b = confs.join("t2", "b".into(), "f".into(), None).unwrap();
    assert_eq!(
        confs.join("t3", "c".into(), "f".into(), None).unwrap_err(),
        ConferenceError::TooManyRooms
    );
    assert_eq!(
        confs.create(String::new()).unwrap_err(),
        ConferenceError::TooManyRooms
    );
    // Joining an existing room needs no slot.
    let _a2 = confs.join("t1", "a2".into(), "f".into(), None).unwrap();
    confs.delete(&api.id).unwrap();
    let _c = confs.join("t3", "c".into(), "f".into(), None).unwrap();
    assert_eq!(confs.list().len(), 3);
    drop(a);
}

#[test]
fn concurrent_makers_never_pass_the_room_bound() {
    const MAX: usize = 50;
    let confs = Conferences::with_max_rooms(MAX);
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (confs, barrier) = (confs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..100)
                    .filter(|_| confs.create(String::new()).is_ok())
                    .count()
            })
        })
        .collect();
    let made: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    assert_eq!(made, MAX);
    assert_eq!(confs.list().len(), MAX);
}
