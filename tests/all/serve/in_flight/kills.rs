//! The service killed with runs in flight: once with a run paused between
//! its durable intent and its post, and three times at moments drawn at
//! random. After the restarts no post is made twice: a run whose post the
//! kill cut off while it was being answered stops for a person (the post
//! may have arrived), and every other run completes, each step under its
//! one key. Once those people resume theirs, every run has completed. A
//! run paused at a fault point holds only itself, not the thread the
//! others share.

use super::*;

#[test]
fn runs_killed_in_flight_after_a_durable_intent_resume_with_the_same_keys() {
    let receiver = SlowReceiver::start();
    let s = fanout(&receiver);
    let runs_sent = 40;
    reviews(&s, runs_sent);
    // The first run to reach its third post stops there, its intent on
    // disk and its post not made; the process is then killed with SIGKILL,
    // with other runs in flight around it.
    let mut service = Service::start(&s, Some("before-apply:tell-3"));
    let mut runs = Vec::new();
    for i in 0..runs_sent {
        runs.push(accept(&service, i));
    }
    service.wait_for("paused at fault point before-apply:tell-3");
    service.child.kill().unwrap();
    service.child.wait().unwrap();
    assert!(s.unfinished() > 0, "runs were cut off in flight");

    let service = Service::start(&s, None);
    let asked = resume_those_a_person_must_look_at(&s, &runs, &receiver);
    drop(service);
    // Each step of each run was posted under one key; a post again only
    // where a person resumed a run whose post the kill had cut off.
    let seen = receiver.seen.lock().unwrap();
    let keys = posts_per_key(&seen);
    assert_eq!(keys.len(), runs_sent * STEPS, "one key per step per run");
    let again: usize = keys.values().map(|n| n - 1).sum();
    assert!(
        again <= asked && asked <= 2 * 16,
        "{again} posts again, {asked} runs asked about: only those cut off by the kill"
    );
    for n in 1..=STEPS {
        let log = std::fs::read_to_string(s.path(&format!("state/sent/c{n}.sent"))).unwrap();
        let mut logged: Vec<&str> = log.lines().collect();
        logged.sort_unstable();
        logged.dedup();
        assert_eq!(logged.len(), runs_sent, "c{n}");
    }
    the_chain_holds_each_runs_rows_in_their_order(&s, runs_sent);
}

#[test]
fn runs_killed_three_times_at_arbitrary_moments_complete_each_step_under_one_key() {
    let receiver = SlowReceiver::start();
    let s = fanout(&receiver);
    // 16 at a time, so that the runs outlast the posting of their events
    // and the kills fall among them.
    s.edit_config("max-in-flight = 256", "max-in-flight = 16");
    let runs_sent = 120;
    reviews(&s, runs_sent);
    // Where the kills fall: after a number of posts drawn from the clock
    // (printed, to replay a failure).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    eprintln!("kill points drawn from seed {seed}");
    let posts = || receiver.seen.lock().unwrap().posts.len();
    let mut service = Service::start(&s, None);
    let mut runs = Vec::new();
    for i in 0..runs_sent {
        runs.push(accept(&service, i));
    }
    let mut kills = 0;
    for k in 0..3 {
        let at = posts() + 1 + (seed >> (8 * k)) % 97;
        let deadline = Instant::now() + Duration::from_secs(60);
        while posts() < at && s.unfinished() > 0 {
            assert!(Instant::now() < deadline, "no progress towards post {at}");
            std::thread::yield_now();
        }
        if s.unfinished() == 0 {
            break;
        }
        // SIGKILL with runs in flight, batches open.
        service.child.kill().unwrap();
        service.child.wait().unwrap();
        kills += 1;
        service = Service::start(&s, None);
    }
    let asked = resume_those_a_person_must_look_at(&s, &runs, &receiver);
    drop(service);
    assert!(kills > 0, "every run finished before the first kill");
    let seen = receiver.seen.lock().unwrap();
    let keys = posts_per_key(&seen);
    assert_eq!(keys.len(), runs_sent * STEPS, "one key per step per run");
    // A post again only where a person resumed a run whose post a kill cut
    // off: at most the posts in flight at each kill.
    let again: usize = keys.values().map(|n| n - 1).sum();
    eprintln!("{kills} kills, {asked} runs asked about, {again} posts again");
    assert!(
        again <= asked && asked <= kills * seen.peak,
        "{again} posts again, {asked} runs asked about after {kills} kills, at most {} in flight",
        seen.peak
    );
    drop(seen);
    the_chain_holds_each_runs_rows_in_their_order(&s, runs_sent);
}

/// How many posts the receiver took under each (channel, key).
fn posts_per_key(seen: &Seen) -> BTreeMap<(String, String), usize> {
    let mut keys: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (path, key) in &seen.posts {
        *keys.entry((path.clone(), key.clone())).or_default() += 1;
    }
    keys
}

/// Every run ends completed, or stopped for a person because a kill cut
/// its post off while it was being answered: before anyone resumes one,
/// no key was posted twice. Each of those is then resumed as the person
/// who looked would, and completes. How many there were.
fn resume_those_a_person_must_look_at(
    s: &Scenario,
    runs: &[String],
    receiver: &SlowReceiver,
) -> usize {
    let mut stopped = Vec::new();
    for run_id in runs {
        match outcome_of(s, run_id).as_str() {
            "completed" => {}
            "halted-for-follow-up" => stopped.push(run_id),
            other => panic!("{run_id}: {other}"),
        }
    }
    let twice: Vec<_> = posts_per_key(&receiver.seen.lock().unwrap())
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "posted twice by no one's decision: {twice:?}"
    );
    for run_id in &stopped {
        let id = s.count(&format!(
            "SELECT id FROM follow_ups WHERE run_id = '{run_id}'"
        ));
        let packet = s.follow_up(id)["packet"].clone();
        let summary = packet["summary"].as_str().unwrap_or_default();
        assert!(
            summary.contains("may have been delivered already"),
            "{run_id}: {packet}"
        );
        let done = s.resume_follow_up(id);
        assert_eq!(done["outcome"], "completed", "{run_id}: {done}");
    }
    stopped.len()
}

#[test]
fn runs_paused_at_a_fault_point_hold_only_themselves_not_their_thread() {
    let receiver = SlowReceiver::start();
    let s = fanout(&receiver);
    // One thread drives every run.
    s.edit_config(
        "max-in-flight = 256\n",
        "max-in-flight = 256\nthreads = 1\n",
    );
    let runs_sent = 10;
    reviews(&s, runs_sent);
    let service = Service::start(&s, Some("before-apply:tell-3"));
    // The first run stops before its third post, for good...
    accept(&service, 0);
    service.wait_for("paused at fault point before-apply:tell-3");
    // ...and the runs that come after it, on the same thread, still make
    // their first two.
    for i in 1..runs_sent {
        accept(&service, i);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.seen.lock().unwrap().posts.len() < runs_sent * 2 {
        assert!(
            Instant::now() < deadline,
            "{} posts: the paused runs held their thread",
            receiver.seen.lock().unwrap().posts.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(service);
}
