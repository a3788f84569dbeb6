//! Unit tests of `approvals` that reach its private parts.

use super::*;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn opening_drops_expired_approvals_from_the_front() {
    let a = Approvals::new(100);
    for n in 0..10 {
        a.open(id(n), id(1000), id(2000 + n), 50, 0).unwrap();
    }
    assert_eq!(a.len(), 10);
    a.open(id(99), id(1000), id(2099), 500, 60).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a.session_of(&id(99)).unwrap(), Some(id(1000)));
    assert_eq!(a.session_of(&id(3)).unwrap(), None);
}

#[test]
fn held_approvals_are_bounded_by_refusing_new_ones() {
    let a = Approvals::new(3);
    for n in 0..3 {
        a.open(id(n), id(1000), id(2000 + n), 1_000_000, 0).unwrap();
    }
    for n in 3..10 {
        let err = a
            .open(id(n), id(1000), id(2000 + n), 1_000_000, 0)
            .unwrap_err();
        assert_eq!(
            (err.code(), err.path()),
            ("TOO_MANY_PENDING", Some("/requester/session_id"))
        );
    }
    assert_eq!(a.len(), 3);
    for n in 0..3 {
        assert!(a.session_of(&id(n)).unwrap().is_some(), "approval {n} kept");
    }
    assert!(a.session_of(&id(3)).unwrap().is_none());
}

#[test]
fn a_note_is_bounded_and_has_no_control_characters() {
    let a = Approvals::new(10);
    a.open(id(1), id(1000), id(2001), 1_000, 0).unwrap();
    let long = "é".repeat(MAX_NOTE + 1);
    for bad in [
        long.as_str(),
        "a\nb",
        "tab\there",
        "esc\u{1b}[0m",
        "c1\u{85}",
    ] {
        let err = a.reject(&id(1), "ops", Some(bad), 1).unwrap_err();
        assert_eq!((err.code(), err.path()), ("INVALID_NOTE", Some("/note")));
        let err = a
            .approve(
                &id(1),
                "ops",
                Some(bad),
                Some("x"),
                None,
                GrantScope::Resolution,
                1,
            )
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_NOTE");
    }
    // Nothing was decided by the refused calls.
    let ok = "é".repeat(MAX_NOTE);
    let d = a
        .approve(
            &id(1),
            "ops",
            Some(&ok),
            Some("x"),
            None,
            GrantScope::Resolution,
            1,
        )
        .unwrap();
    assert_eq!(d.note.as_deref(), Some(ok.as_str()));
}

#[test]
fn an_expired_approval_not_yet_dropped_answers_expired() {
    let a = Approvals::new(10);
    a.open(id(1), id(1000), id(2001), 1_000, 0).unwrap();
    a.open(id(2), id(1000), id(2002), 100, 0).unwrap();
    // The first lives longer, so the second stays behind it in order.
    a.open(id(3), id(1000), id(2003), 1_000, 200).unwrap();
    assert_eq!(a.len(), 3);
    let err = a.reject(&id(2), "ops", None, 200).unwrap_err();
    assert!(matches!(err, CoreError::ApprovalExpired(_)), "{err:?}");
}
