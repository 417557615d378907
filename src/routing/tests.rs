use super::*;
use proptest::prelude::{ProptestConfig, any, prop, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

fn agent(id: &str, skills: &[(&str, u32)]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
    }
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        name: name.into(),
        skills: vec![name.into()],
        strategy,
        ring_timeout: Duration::from_secs(15),
        wrap_up: Duration::from_secs(10),
        retry: Duration::from_secs(5),
    }
}

struct Clock(Instant);

impl Clock {
    /// A fake clock: a real origin, then only offsets from it.
    #[allow(clippy::disallowed_methods)]
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn at(&self, s: u64) -> Instant {
        self.0 + Duration::from_secs(s)
    }
}

fn ring(call: CallId, agent: AgentId) -> RouterAction {
    RouterAction::Ring {
        call,
        agent,
        callback: false,
    }
}

/// Three support agents, all registered, made available at t=1, 2, 3.
fn three(strategy: Strategy) -> (Router, Clock) {
    let t = Clock::new();
    let agents = [
        agent("a", &[("support", 1)]),
        agent("b", &[("support", 5)]),
        agent("c", &[("support", 3)]),
    ];
    let mut r = Router::new(&agents, &[queue("support", strategy)], true, t.at(0));
    for a in 0..3 {
        assert!(
            r.handle(RouterEvent::Registered { agent: a }, t.at(1 + a as u64))
                .is_empty()
        );
    }
    (r, t)
}

fn enqueue(r: &mut Router, call: CallId, priority: u32, now: Instant) -> Vec<RouterAction> {
    r.handle(
        RouterEvent::Enqueue {
            call,
            queue: 0,
            priority,
        },
        now,
    )
}

#[test]
fn longest_idle_rings_the_agent_free_longest_and_wrap_up_follows_the_call() {
    let (mut r, t) = three(Strategy::LongestIdle);
    assert_eq!(enqueue(&mut r, 1, 0, t.at(10)), vec![ring(1, 0)]);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Ringing);
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(12));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert_eq!(r.connected_agent(1), Some(0));
    r.handle(RouterEvent::Ended { call: 1 }, t.at(72));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(r.poll_timeout(), Some(t.at(82)));
    r.handle(RouterEvent::Timer, t.at(82));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Available);
    // Now agent 0 is the most recently idle: the next call goes to agent 1.
    assert_eq!(enqueue(&mut r, 2, 0, t.at(90)), vec![ring(2, 1)]);
}

#[test]
fn an_agent_not_taking_calls_says_why() {
    let t = Clock::new();
    let agents = [agent("a", &[("support", 1)])];
    let mut r = Router::new(
        &agents,
        &[queue("support", Strategy::LongestIdle)],
        false,
        t.at(0),
    );
    let set = |r: &mut Router, state, reason: Option<&str>, at| {
        r.handle(
            RouterEvent::SetState {
                agent: 0,
                state,
                reason: reason.map(str::to_string),
            },
            at,
        )
    };
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Offline);
    assert_eq!(r.agent_reason(0), Some("no-phone"));
    r.handle(RouterEvent::Registered { agent: 0 }, t.at(1));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::NotReady);
    assert_eq!(r.agent_reason(0), Some("registered"));
    set(&mut r, Requested::Available, None, t.at(2));
    assert_eq!(r.agent_reason(0), None);
    set(&mut r, Requested::NotReady, Some("lunch"), t.at(3));
    assert_eq!(r.agent_reason(0), Some("lunch"));
    assert_eq!(r.agent_state(0).unwrap().1, t.at(3));
    // A new reason for the same state: the reason changes, the state's start does not.
    set(&mut r, Requested::NotReady, Some("training"), t.at(4));
    assert_eq!(r.agent_reason(0), Some("training"));
    assert_eq!(r.agent_state(0).unwrap().1, t.at(3));
    // Rung and not answering: not ready, because of the ring.
    set(&mut r, Requested::Available, None, t.at(5));
    assert_eq!(enqueue(&mut r, 1, 0, t.at(6)), vec![ring(1, 0)]);
    assert_eq!(r.agent_reason(0), None);
    r.handle(RouterEvent::Timer, t.at(21));
    assert_eq!(r.agent_reason(0), Some("ring-no-answer"));
    // Asked for during a call: applied, with its reason, once the wrap-up is over.
    set(&mut r, Requested::Available, None, t.at(22));
    // Call 1 rang out on this agent: it waits for another; call 2 is theirs.
    assert_eq!(enqueue(&mut r, 2, 0, t.at(22)), vec![ring(2, 0)]);
    r.handle(RouterEvent::Answered { call: 2, agent: 0 }, t.at(23));
    set(&mut r, Requested::NotReady, Some("meeting"), t.at(24));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert_eq!(r.agent_reason(0), None);
    r.handle(RouterEvent::Ended { call: 2 }, t.at(30));
    r.handle(RouterEvent::Timer, t.at(40));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::NotReady);
    assert_eq!(r.agent_reason(0), Some("meeting"));
    r.handle(RouterEvent::Unregistered { agent: 0 }, t.at(41));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Offline);
    assert_eq!(r.agent_reason(0), Some("no-phone"));
}

#[test]
fn ring_no_answer_sets_the_agent_not_ready_and_the_call_keeps_its_place() {
    let (mut r, t) = three(Strategy::LongestIdle);
    // Only agent 0 is free; calls 1 and 2 arrive.
    r.handle(
        RouterEvent::SetState {
            agent: 1,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(5),
    );
    r.handle(
        RouterEvent::SetState {
            agent: 2,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(5),
    );
    assert_eq!(enqueue(&mut r, 1, 0, t.at(10)), vec![ring(1, 0)]);
    assert!(enqueue(&mut r, 2, 0, t.at(11)).is_empty());
    // Agent 1 comes back while 0 rings: the next call in line (2) goes to them.
    assert_eq!(
        r.handle(
            RouterEvent::SetState {
                agent: 1,
                state: Requested::Available,
                reason: None,
            },
            t.at(12)
        ),
        vec![ring(2, 1)]
    );
    r.handle(RouterEvent::Declined { call: 2, agent: 1 }, t.at(13));
    // Call 2 is back, behind nothing; agent 1 is available but declined it, so it waits.
    assert!(r.is_waiting(2));
    // Agent 0 does not answer call 1 within 15 s.
    let out = r.handle(RouterEvent::Timer, t.at(25));
    assert_eq!(
        out[0],
        RouterAction::CancelRing {
            call: 1,
            agent: 0,
            elsewhere: false
        }
    );
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::NotReady);
    // Call 1 is back at the head, ahead of call 2, and agent 1 (free) takes it.
    assert!(out.contains(&ring(1, 1)), "{out:?}");
    assert_eq!(r.position(2), Some(0));
}

/// The repro of a caller stranded beside an idle agent: the only agent misses the ring, comes
/// back, and must be offered that caller again — after the queue's retry time, not never.
#[test]
fn an_agent_who_missed_a_caller_is_offered_them_again_after_the_retry_time() {
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 1..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(5),
        );
    }
    assert_eq!(enqueue(&mut r, 1, 0, t.at(10)), vec![ring(1, 0)]);
    // No answer within 15 s: not-ready, the caller back in line.
    let out = r.handle(RouterEvent::Timer, t.at(25));
    assert_eq!(
        out,
        vec![RouterAction::CancelRing {
            call: 1,
            agent: 0,
            elsewhere: false
        }]
    );
    assert_eq!(r.agent_reason(0), Some("ring-no-answer"));
    // She makes herself available at once: within the retry time the caller still waits...
    let back = RouterEvent::SetState {
        agent: 0,
        state: Requested::Available,
        reason: None,
    };
    assert!(r.handle(back.clone(), t.at(26)).is_empty());
    assert!(r.is_waiting(1));
    // ...and the router's own timer rings her for them when it is up (5 s after the miss).
    assert_eq!(r.poll_timeout(), Some(t.at(30)));
    assert_eq!(r.handle(RouterEvent::Timer, t.at(30)), vec![ring(1, 0)]);

    // Busy this time; an agent coming back long after a miss is offered the caller at once.
    r.handle(RouterEvent::Declined { call: 1, agent: 0 }, t.at(31));
    assert!(r.is_waiting(1));
    r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(32),
    );
    assert!(r.handle(RouterEvent::Timer, t.at(36)).is_empty());
    assert_eq!(r.handle(back, t.at(90)), vec![ring(1, 0)]);
}

/// A callback whose caller still hears the confirmation keeps its place but rings nobody;
/// released (the caller hung up), it is rung for at once, ahead of later callers.
#[test]
fn a_held_callback_keeps_its_place_and_is_rung_for_once_released() {
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 1..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(5),
        );
    }
    r.handle(RouterEvent::Hold { call: 1 }, t.at(10));
    assert!(
        enqueue(&mut r, 1, 0, t.at(10)).is_empty(),
        "held: nobody rung"
    );
    // A later caller is served meanwhile; the held one stays first in line.
    assert_eq!(enqueue(&mut r, 2, 0, t.at(11)), vec![ring(2, 0)]);
    r.handle(RouterEvent::Answered { call: 2, agent: 0 }, t.at(12));
    r.handle(RouterEvent::Ended { call: 2 }, t.at(13));
    assert!(
        r.handle(RouterEvent::Timer, t.at(23)).is_empty(),
        "still held"
    );
    assert_eq!(r.position(1), Some(0));
    assert_eq!(
        r.handle(RouterEvent::Release { call: 1 }, t.at(24)),
        vec![ring(1, 0)]
    );
}

/// A reload: a removed agent finishes the call she is on and then goes offline for good; an
/// agent given a new skill starts serving that queue's waiting caller at once; a removed
/// queue takes nobody new.
#[test]
fn a_reload_changes_agents_and_queues_without_disturbing_a_call() {
    let (mut r, t) = three(Strategy::LongestIdle);
    let mut agents = vec![
        agent("a", &[("support", 1)]),
        agent("b", &[("support", 5)]),
        agent("c", &[("support", 3)]),
    ];
    let mut queues = vec![
        queue("support", Strategy::LongestIdle),
        queue("sales", Strategy::RoundRobin),
    ];
    assert!(r.reconfigure(&agents, &queues, t.at(4)).is_empty());
    assert_eq!(enqueue(&mut r, 1, 0, t.at(5)), vec![ring(1, 0)]);
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(6));
    let sales_caller = r.handle(
        RouterEvent::Enqueue {
            call: 2,
            queue: 1,
            priority: 0,
        },
        t.at(7),
    );
    assert!(sales_caller.is_empty(), "nobody sells yet");
    // Agent a is removed; c learns sales (and is rung for the waiting sales caller).
    agents.remove(0);
    agents[1].skills.insert("sales".into(), 1);
    queues.push(queue("vip", Strategy::RingAll));
    let out = r.reconfigure(&agents, &queues, t.at(8));
    assert_eq!(out, vec![ring(2, 2)]);
    assert_eq!(
        r.agent_state(0).unwrap().0,
        AgentState::Busy,
        "her call goes on"
    );
    r.handle(RouterEvent::Ended { call: 1 }, t.at(9));
    r.handle(RouterEvent::Timer, t.at(19));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Offline);
    assert_eq!(r.agent_reason(0), Some("removed"));
    assert!(r.is_retired(0));
    r.handle(RouterEvent::Registered { agent: 0 }, t.at(20));
    assert_eq!(
        r.agent_state(0).unwrap().0,
        AgentState::Offline,
        "a removed agent stays out"
    );
    // The sales queue goes: nobody new joins it.
    queues.remove(1);
    r.reconfigure(&agents, &queues, t.at(21));
    assert!(
        r.handle(
            RouterEvent::Enqueue {
                call: 3,
                queue: 1,
                priority: 0
            },
            t.at(22)
        )
        .is_empty()
    );
    assert_eq!(r.position(3), None);
    // The new queue (index 2) is served by b and c, who have its skill... none: vip needs vip.
    assert_eq!(r.queue_figures(2, t.at(22)).unwrap().staffed, 0);
}

/// Under ring-all nobody is to blame for a round nobody answered: after the retry time every
/// phone rings again.
#[test]
fn ring_all_rings_everyone_again_after_an_unanswered_round() {
    let (mut r, t) = three(Strategy::RingAll);
    let first = enqueue(&mut r, 1, 0, t.at(10));
    assert_eq!(first.len(), 3);
    let out = r.handle(RouterEvent::Timer, t.at(25));
    assert_eq!(out.len(), 3, "three rings cancelled: {out:?}");
    assert!(r.is_waiting(1));
    for a in 0..3 {
        assert_eq!(r.agent_state(a).unwrap().0, AgentState::Available);
    }
    assert_eq!(r.poll_timeout(), Some(t.at(30)));
    let mut again = r.handle(RouterEvent::Timer, t.at(30));
    again.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(again, vec![ring(1, 0), ring(1, 1), ring(1, 2)]);
}

#[test]
fn priority_first_then_first_come() {
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 0..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(4),
        );
    }
    for (call, prio) in [(1, 0), (2, 0), (3, 5), (4, 0), (5, 5)] {
        enqueue(&mut r, call, prio, t.at(10 + call));
    }
    assert_eq!(r.position(3), Some(0));
    assert_eq!(r.position(5), Some(1));
    assert_eq!(r.position(1), Some(2));
    // One agent takes them one by one: each wrap-up's end rings the next caller in line.
    let mut order = Vec::new();
    let mut out = r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::Available,
            reason: None,
        },
        t.at(30),
    );
    for round in 0..5u64 {
        let Some(RouterAction::Ring { call, .. }) = out.first().cloned() else {
            panic!("{out:?}")
        };
        order.push(call);
        r.handle(
            RouterEvent::Answered { call, agent: 0 },
            t.at(31 + 20 * round),
        );
        r.handle(RouterEvent::Ended { call }, t.at(32 + 20 * round));
        out = r.handle(RouterEvent::Timer, t.at(42 + 20 * round));
    }
    assert_eq!(order, vec![3, 5, 1, 2, 4]);
}

#[test]
fn each_strategy_picks_its_agent() {
    let (mut r, t) = three(Strategy::SkillWeighted);
    assert_eq!(
        enqueue(&mut r, 1, 0, t.at(10)),
        vec![ring(1, 1)],
        "skill 5 first"
    );

    let (mut r, t) = three(Strategy::RoundRobin);
    let mut rung = Vec::new();
    for call in 1..=4 {
        let out = enqueue(&mut r, call, 0, t.at(10 + call));
        let Some(RouterAction::Ring { agent, .. }) = out.first() else {
            panic!()
        };
        rung.push(*agent);
        r.handle(
            RouterEvent::Answered {
                call,
                agent: *agent,
            },
            t.at(10 + call),
        );
        r.handle(RouterEvent::Ended { call }, t.at(10 + call));
        r.handle(RouterEvent::Timer, t.at(30 + call));
    }
    assert_eq!(rung, vec![0, 1, 2, 0]);

    let (mut r, t) = three(Strategy::FewestCalls);
    for call in 1..=3 {
        let agent = (call - 1) as usize;
        assert_eq!(enqueue(&mut r, call, 0, t.at(10)), vec![ring(call, agent)]);
        r.handle(RouterEvent::Answered { call, agent }, t.at(11));
    }
    // Agent 2 takes two more calls; then agent 0 and 1 have handled fewer.
    for call in 1..=3 {
        r.handle(RouterEvent::Ended { call }, t.at(12));
    }
    r.handle(RouterEvent::Timer, t.at(30));
    assert_eq!(enqueue(&mut r, 9, 0, t.at(31)), vec![ring(9, 0)]);

    let (mut r, t) = three(Strategy::RingAll);
    let out = enqueue(&mut r, 1, 0, t.at(10));
    assert_eq!(out, vec![ring(1, 0), ring(1, 1), ring(1, 2)]);
    let out = r.handle(RouterEvent::Answered { call: 1, agent: 2 }, t.at(11));
    assert_eq!(
        out,
        vec![
            RouterAction::CancelRing {
                call: 1,
                agent: 0,
                elsewhere: true
            },
            RouterAction::CancelRing {
                call: 1,
                agent: 1,
                elsewhere: true
            }
        ]
    );
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Available);
    assert_eq!(r.agent_state(2).unwrap().0, AgentState::Busy);
}

#[test]
fn a_callback_keeps_the_callers_place_and_rings_the_agent_first() {
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 0..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(4),
        );
    }
    enqueue(&mut r, 1, 0, t.at(10));
    enqueue(&mut r, 2, 0, t.at(11));
    r.handle(RouterEvent::ToCallback { call: 1 }, t.at(200));
    enqueue(&mut r, 3, 0, t.at(201));
    assert_eq!(r.position(1), Some(0));
    let out = r.handle(
        RouterEvent::SetState {
            agent: 1,
            state: Requested::Available,
            reason: None,
        },
        t.at(300),
    );
    assert_eq!(
        out,
        vec![RouterAction::Ring {
            call: 1,
            agent: 1,
            callback: true
        }]
    );
}

#[test]
fn a_caller_leaving_while_ringing_cancels_the_ring_and_frees_the_agent() {
    let (mut r, t) = three(Strategy::LongestIdle);
    enqueue(&mut r, 1, 0, t.at(10));
    let out = r.handle(RouterEvent::Abandon { call: 1 }, t.at(11));
    assert_eq!(
        out,
        vec![RouterAction::CancelRing {
            call: 1,
            agent: 0,
            elsewhere: false
        }]
    );
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Available);
    assert_eq!(r.poll_timeout(), None, "no ring timer left");
}

#[test]
fn state_changes_wait_for_the_call_and_an_unregistered_phone_is_never_rung() {
    let t = Clock::new();
    let mut r = Router::new(
        &[agent("a", &[("support", 1)])],
        &[queue("support", Strategy::LongestIdle)],
        false,
        t.at(0),
    );
    assert!(
        r.handle(
            RouterEvent::SetState {
                agent: 0,
                state: Requested::Available,
                reason: None,
            },
            t.at(1)
        )
        .is_empty()
    );
    assert_eq!(
        r.agent_state(0).unwrap().0,
        AgentState::Offline,
        "no phone, no availability"
    );
    r.handle(RouterEvent::Registered { agent: 0 }, t.at(2));
    assert_eq!(
        r.agent_state(0).unwrap().0,
        AgentState::NotReady,
        "ready_on_register = false"
    );
    assert!(enqueue(&mut r, 1, 0, t.at(3)).is_empty());
    assert_eq!(
        r.handle(
            RouterEvent::SetState {
                agent: 0,
                state: Requested::Available,
                reason: None,
            },
            t.at(4)
        ),
        vec![ring(1, 0)]
    );
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(5));
    r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::Offline,
            reason: None,
        },
        t.at(6),
    );
    assert_eq!(
        r.agent_state(0).unwrap().0,
        AgentState::Busy,
        "the call goes on"
    );
    r.handle(RouterEvent::Ended { call: 1 }, t.at(65));
    r.handle(RouterEvent::Timer, t.at(75));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Offline);
    let f = r.queue_figures(0, t.at(75)).unwrap();
    assert_eq!(
        (f.staffed, f.average_handle),
        (0, Some(Duration::from_secs(60)))
    );
}

#[test]
fn wait_estimates_follow_position_and_handle_time() {
    let (mut r, t) = three(Strategy::LongestIdle);
    // Three calls of 120 s each teach the queue its handle time.
    for call in 1..=3 {
        let agent = (call - 1) as usize;
        enqueue(&mut r, call, 0, t.at(10));
        r.handle(RouterEvent::Answered { call, agent }, t.at(10));
        r.handle(RouterEvent::Ended { call }, t.at(130));
    }
    for a in 0..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(131),
        );
    }
    r.handle(RouterEvent::Timer, t.at(150));
    for call in 10..16 {
        enqueue(&mut r, call, 0, t.at(200));
    }
    // Three agents staffed, 120 s per call: the 6th caller waits two rounds.
    assert_eq!(r.position(15), Some(5));
    assert_eq!(r.expected_wait(15), Some(Duration::from_secs(240)));
    assert_eq!(r.expected_wait(10), Some(Duration::from_secs(120)));
}

#[test]
fn told_waits_are_scored_when_the_caller_is_answered_or_leaves() {
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 0..3 {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            t.at(5),
        );
    }
    let s = Duration::from_secs;
    // Caller 1: told 2 minutes at 20 s, then 1 minute at 80 s; answered at 320 s.
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(
        RouterEvent::Told {
            call: 1,
            wait: s(120),
        },
        t.at(20),
    );
    r.handle(
        RouterEvent::Told {
            call: 1,
            wait: s(60),
        },
        t.at(80),
    );
    assert_eq!(r.baseline_wait(1, t.at(80)), None, "no answered wait yet");
    r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::Available,
            reason: None,
        },
        t.at(319),
    );
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(320));
    let f = r.wait_audit(0).unwrap().clone();
    // 300 − 120 = 180 and 240 − 60 = 180: both overran 1.5×.
    assert_eq!((f.samples, f.abs_error_sum, f.overruns), (2, 360.0, 2));
    // Caller 2 joins; the queue's recent answered wait is 310 s, so the baseline is 310 − 10.
    enqueue(&mut r, 2, 0, t.at(400));
    assert_eq!(r.baseline_wait(2, t.at(410)), Some(s(300)));
    r.handle(
        RouterEvent::Told {
            call: 2,
            wait: s(60),
        },
        t.at(410),
    );
    // Caller 2 hangs up 30 s later: scored as a 30 s wait against 60 s told.
    r.handle(RouterEvent::Abandon { call: 2 }, t.at(440));
    let f = r.wait_audit(0).unwrap().clone();
    assert_eq!((f.samples, f.overruns, f.compared), (3, 2, 1));
    assert_eq!(f.compared_abs_error, 30.0);
    assert_eq!(f.baseline_abs_error, 270.0);
    assert!(!f.baseline_better());
    // Caller 3 takes a callback: the live wait ends there; a later Told is ignored.
    enqueue(&mut r, 3, 0, t.at(500));
    r.handle(
        RouterEvent::Told {
            call: 3,
            wait: s(60),
        },
        t.at(510),
    );
    r.handle(RouterEvent::ToCallback { call: 3 }, t.at(530));
    r.handle(
        RouterEvent::Told {
            call: 3,
            wait: s(60),
        },
        t.at(540),
    );
    r.handle(RouterEvent::Abandon { call: 3 }, t.at(600));
    assert_eq!(r.wait_audit(0).unwrap().samples, 4);
    // Unknown calls and queues change nothing.
    r.handle(
        RouterEvent::Told {
            call: 99,
            wait: s(60),
        },
        t.at(600),
    );
    assert_eq!(r.wait_audit(0).unwrap().samples, 4);
    assert!(r.wait_audit(7).is_none());
}

// ---- property tests: the router's promises over random days ------------------------------

#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Unregister(usize),
    Set(usize, u8),
    Enqueue(usize, u32),
    Callback(usize),
    Hold(usize),
    Release(usize),
    Reconfigure(u8),
    Abandon(usize),
    Answer(usize),
    Decline(usize),
    End(usize),
    Transfer(usize, usize),
    PassTo(usize, usize),
    Consult(usize, usize),
    Complete(usize),
    EndConsult(usize),
    Requeue(usize),
    Wait(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        1 => (0..6usize).prop_map(Op::Register),
        1 => (0..6usize).prop_map(Op::Unregister),
        1 => (0..6usize, 0..3u8).prop_map(|(a, s)| Op::Set(a, s)),
        4 => (0..2usize, 0..3u32).prop_map(|(q, p)| Op::Enqueue(q, p)),
        1 => (0..40usize).prop_map(Op::Callback),
        1 => (0..40usize).prop_map(Op::Hold),
        1 => (0..40usize).prop_map(Op::Release),
        1 => (0..3u8).prop_map(Op::Reconfigure),
        1 => (0..40usize).prop_map(Op::Abandon),
        3 => (0..40usize).prop_map(Op::Answer),
        1 => (0..40usize).prop_map(Op::Decline),
        2 => (0..40usize).prop_map(Op::End),
        1 => (0..40usize, 0..2usize).prop_map(|(c, q)| Op::Transfer(c, q)),
        1 => (0..40usize, 0..6usize).prop_map(|(c, a)| Op::PassTo(c, a)),
        1 => (0..40usize, 0..6usize).prop_map(|(c, a)| Op::Consult(c, a)),
        1 => (0..40usize).prop_map(Op::Complete),
        1 => (0..40usize).prop_map(Op::EndConsult),
        1 => (0..40usize).prop_map(Op::Requeue),
        2 => (1..30u64).prop_map(Op::Wait),
    ]
}

/// Everything the router promises, checked after every event.
fn check(r: &Router, now: Instant) {
    for (id, a) in r.agents.iter().enumerate() {
        match a.state {
            AgentState::Ringing | AgentState::Busy => {
                let call = a.call.expect("a ringing or busy agent has a call");
                let c = &r.calls[&call];
                match &c.state {
                    CallState::Ringing { agents, .. } => {
                        assert_eq!(a.state, AgentState::Ringing);
                        assert!(agents.contains(&id));
                    }
                    CallState::Connected { agent, .. } => {
                        assert_eq!(*agent, id, "a call is connected to one agent");
                        assert_eq!(a.state, AgentState::Busy);
                    }
                    CallState::Passing {
                        from,
                        to,
                        until,
                        kind,
                        ..
                    } => {
                        assert_ne!(from, to);
                        if *from == id {
                            assert_eq!(a.state, AgentState::Busy);
                        } else if *kind == PassKind::Consulting {
                            assert_eq!(*to, id, "agent {id} holds a call passed to another");
                            assert_eq!(a.state, AgentState::Busy);
                            assert!(!r.ring_deadlines.iter().any(|d| d.1 == call && d.2 == id));
                        } else {
                            assert_eq!(*to, id, "agent {id} holds a call passed to another");
                            assert_eq!(a.state, AgentState::Ringing);
                            assert!(r.ring_deadlines.contains(&(*until, call, id)));
                        }
                    }
                    CallState::Waiting => panic!("agent {id} holds a waiting call"),
                }
            }
            _ => assert_eq!(a.call, None, "agent {id} in {:?} holds a call", a.state),
        }
        for &q in &a.queues {
            let listed = r.queues[q].available.iter().any(|&(_, x)| x == id);
            assert_eq!(listed, a.state == AgentState::Available);
        }
    }
    for (call, c) in &r.calls {
        let waiting = r.queues[c.queue].waiting.get(&c.place) == Some(call);
        assert_eq!(waiting, matches!(c.state, CallState::Waiting));
        if let CallState::Waiting = c.state
            && !r.held.contains(call)
        {
            // No waiting caller goes longer than `retry` while an available agent of its
            // queue is idle: the only agent it may wait beside is one who tried it less than
            // `retry` ago, and the router's timer wakes it no later than that.
            let retry = r.queues[c.queue].config.retry;
            for &(_, a) in &r.queues[c.queue].available {
                let until = c.tried.iter().find(|t| t.0 == a).map(|t| t.1);
                let Some(until) = until.filter(|&u| u > now) else {
                    panic!("call {call} waits while agent {a} is free");
                };
                assert!(
                    until <= now + retry,
                    "call {call} kept from agent {a} too long"
                );
                assert!(
                    r.poll_timeout().is_some_and(|t| t <= until),
                    "no timer offers call {call} to agent {a} again"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
    ))]

    #[test]
    fn the_router_keeps_its_promises(ops in prop::collection::vec(op(), 1..120), ring_all in any::<bool>()) {
        let t = Clock::new();
        let agents: Vec<AgentConfig> = (0..6)
            .map(|i| agent(&format!("a{i}"), if i % 2 == 0 { &[("support", 2), ("sales", 1)] } else { &[("support", 4)] }))
            .collect();
        let queues = [
            queue("support", if ring_all { Strategy::RingAll } else { Strategy::LongestIdle }),
            queue("sales", Strategy::RoundRobin),
        ];
        let mut r = Router::new(&agents, &queues, true, t.at(0));
        let mut now = t.at(1);
        let mut next_call: CallId = 0;
        // The first ring each call got, per queue and priority: FIFO within a priority.
        let mut first_rung: Vec<(QueueId, u32, CallId)> = Vec::new();
        let mut enqueued: Vec<(QueueId, u32, CallId)> = Vec::new();
        let mut held = std::collections::HashSet::new();
        // Calls put back first in line (their agent gone), in the order they were.
        let mut requeued: Vec<CallId> = Vec::new();
        for op in ops {
            let calls: Vec<CallId> = {
                let mut v: Vec<CallId> = r.calls.keys().copied().collect();
                v.sort();
                v
            };
            let pick = |i: usize| calls.get(i % calls.len().max(1)).copied();
            let ringing_agent = |r: &Router, call: CallId| match r.calls.get(&call).map(|c| &c.state) {
                Some(CallState::Ringing { agents, .. }) => agents.first().copied(),
                Some(CallState::Passing { to, .. }) => Some(*to),
                _ => None,
            };
            let event = match op {
                Op::Register(a) => Some(RouterEvent::Registered { agent: a }),
                Op::Unregister(a) => Some(RouterEvent::Unregistered { agent: a }),
                Op::Set(a, s) => Some(RouterEvent::SetState { agent: a, state: [Requested::Available, Requested::NotReady, Requested::Offline][s as usize], reason: None }),
                Op::Enqueue(q, p) => {
                    next_call += 1;
                    enqueued.push((q, p, next_call));
                    Some(RouterEvent::Enqueue { call: next_call, queue: q, priority: p })
                }
                Op::Callback(i) => pick(i).map(|call| RouterEvent::ToCallback { call }),
                Op::Hold(i) => pick(i).inspect(|&call| { held.insert(call); }).map(|call| RouterEvent::Hold { call }),
                Op::Release(i) => pick(i).map(|call| RouterEvent::Release { call }),
                Op::Reconfigure(v) => {
                    // A reload: the day's config, one without agent a5 and with a1 re-skilled,
                    // or one without the sales queue and with a new vip queue.
                    let mut agents = agents.clone();
                    let mut queues = queues.to_vec();
                    match v {
                        1 => {
                            agents.pop();
                            agents[1].skills.insert("sales".into(), 1);
                        }
                        2 => {
                            queues.pop();
                            queues.push(queue("vip", Strategy::FewestCalls));
                            agents[2].skills.insert("vip".into(), 1);
                        }
                        _ => {}
                    }
                    let actions = r.reconfigure(&agents, &queues, now);
                    for a in actions {
                        if let RouterAction::Ring { call, .. } = a
                            && !first_rung.iter().any(|x| x.2 == call)
                            && let Some(e) = enqueued.iter().find(|e| e.2 == call)
                        {
                            first_rung.push(*e);
                        }
                    }
                    check(&r, now);
                    None
                }
                Op::Abandon(i) => pick(i).map(|call| RouterEvent::Abandon { call }),
                Op::Answer(i) => pick(i).and_then(|call| ringing_agent(&r, call).map(|agent| RouterEvent::Answered { call, agent })),
                Op::Decline(i) => pick(i).and_then(|call| ringing_agent(&r, call).map(|agent| RouterEvent::Declined { call, agent })),
                Op::End(i) => pick(i).filter(|c| r.connected_agent(*c).is_some()).map(|call| RouterEvent::Ended { call }),
                Op::Transfer(i, queue) => pick(i).map(|call| RouterEvent::Transfer { call, queue }),
                Op::PassTo(i, agent) => pick(i).map(|call| RouterEvent::PassTo { call, agent }),
                Op::Consult(i, agent) => pick(i).map(|call| RouterEvent::Consult { call, agent }),
                Op::Complete(i) => pick(i).map(|call| RouterEvent::Complete { call }),
                Op::EndConsult(i) => pick(i).map(|call| RouterEvent::EndConsult { call }),
                Op::Requeue(i) => pick(i).filter(|c| r.connected_agent(*c).is_some() && r.passing_to(*c).is_none()).inspect(|&call| {
                    requeued.retain(|&c| c != call);
                    requeued.push(call);
                }).map(|call| RouterEvent::Requeue { call }),
                Op::Wait(s) => {
                    now += Duration::from_secs(s);
                    Some(RouterEvent::Timer)
                }
            };
            let Some(event) = event else { continue };
            let actions = r.handle(event, now);
            // Every queue's line is in the order callers are due: higher priority first, then
            // arrival. A call given back after a decline or no answer is where it was.
            for q in 0..2 {
                let line: Vec<(Reverse<u32>, usize)> = r.queues[q]
                    .waiting
                    .values()
                    .map(|c| {
                        if let Some(i) = requeued.iter().position(|r| r == c) {
                            return (Reverse(u32::MAX), i);
                        }
                        let i = enqueued.iter().position(|e| e.2 == *c).unwrap_or(usize::MAX);
                        (Reverse(enqueued.get(i).map_or(0, |e| e.1)), i)
                    })
                    .collect();
                let mut sorted = line.clone();
                sorted.sort();
                prop_assert_eq!(line, sorted, "queue {} is out of order", q);
            }
            for a in actions {
                if let RouterAction::Ring { call, .. } = a
                    && !first_rung.iter().any(|x| x.2 == call)
                    && let Some(e) = enqueued.iter().find(|e| e.2 == call)
                {
                    first_rung.push(*e);
                }
            }
            check(&r, now);
        }
        // FIFO within priority: among calls of one queue and priority, the first rings come
        // in arrival order (a declined or unanswered call keeps its place, so this holds too;
        // a call held back is rung for when released, whoever came since).
        for q in 0..2 {
            for p in 0..3 {
                let order: Vec<CallId> = first_rung.iter().filter(|e| e.0 == q && e.1 == p && !held.contains(&e.2)).map(|e| e.2).collect();
                let mut sorted = order.clone();
                sorted.sort();
                prop_assert_eq!(order, sorted);
            }
        }
    }
}

/// The desk and the wall follow the router's changes: each agent whose state changed is
/// reported once, a wish for after the call is reported though the state stays, and the
/// wrap-up's time left and the next state are there to show.
#[test]
fn changes_name_each_agent_once_with_the_wish_for_after_the_call() {
    let (mut r, t) = three(Strategy::LongestIdle);
    let first = r.take_changes();
    assert_eq!(first.agents, vec![0, 1, 2]);
    assert!(first.queues);
    assert_eq!(r.take_changes(), Changes::default(), "nothing new");
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    let c = r.take_changes();
    assert_eq!(c.agents, vec![0], "ringing then busy: one row to send");
    assert!(c.queues);
    r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::NotReady,
            reason: Some("lunch".into()),
        },
        t.at(12),
    );
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert_eq!(r.next_state(0), Some((Requested::NotReady, Some("lunch"))));
    assert_eq!(r.take_changes().agents, vec![0]);
    r.handle(RouterEvent::Ended { call: 1 }, t.at(20));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(r.wrap_up_left(0, t.at(24)), Some(Duration::from_secs(6)));
    r.handle(RouterEvent::Timer, t.at(30));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::NotReady);
    assert_eq!(r.agent_reason(0), Some("lunch"));
    assert_eq!(r.next_state(0), None);
    assert_eq!(r.wrap_up_left(0, t.at(30)), None);
    assert_eq!(r.take_changes().agents, vec![0]);
}

/// "Call back now" rings the agent who asked, and only while they are free; a ring they let
/// go unanswered leaves the callback first in line for the queue's other agents.
#[test]
fn call_back_now_rings_the_agent_who_asked_and_then_the_others() {
    let (mut r, t) = three(Strategy::LongestIdle);
    let now = RouterEvent::CallBackNow {
        call: 7,
        queue: 0,
        agent: 2,
    };
    let rung = r.handle(now.clone(), t.at(10));
    assert_eq!(
        rung,
        vec![RouterAction::Ring {
            call: 7,
            agent: 2,
            callback: true
        }]
    );
    assert_eq!(r.agent_state(2).unwrap().0, AgentState::Ringing);
    // Asked again while ringing (or for a call already known): nothing.
    assert!(r.handle(now, t.at(11)).is_empty());
    let busy_agent = RouterEvent::CallBackNow {
        call: 8,
        queue: 0,
        agent: 2,
    };
    assert!(r.handle(busy_agent, t.at(11)).is_empty());
    // An ordinary caller arrives meanwhile; the callback, given back, goes before them.
    r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(12),
    );
    r.handle(
        RouterEvent::SetState {
            agent: 1,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(12),
    );
    enqueue(&mut r, 9, 5, t.at(13));
    let out = r.handle(RouterEvent::Timer, t.at(10 + 15));
    assert!(
        out.contains(&RouterAction::CancelRing {
            call: 7,
            agent: 2,
            elsewhere: false
        }),
        "{out:?}"
    );
    let back = r.handle(
        RouterEvent::SetState {
            agent: 0,
            state: Requested::Available,
            reason: None,
        },
        t.at(30),
    );
    assert_eq!(
        back,
        vec![RouterAction::Ring {
            call: 7,
            agent: 0,
            callback: true
        }]
    );
}

#[test]
fn a_transferred_caller_waits_in_the_new_queue_ahead_of_later_arrivals_and_the_agent_wraps_up() {
    let t = Clock::new();
    let agents = [
        agent("alice", &[("support", 1)]),
        agent("bob", &[("billing", 1)]),
    ];
    let queues = [
        queue("support", Strategy::LongestIdle),
        queue("billing", Strategy::LongestIdle),
    ];
    let mut r = Router::new(&agents, &queues, true, t.at(0));
    r.handle(RouterEvent::Registered { agent: 0 }, t.at(1));
    // Caller 1 reaches alice in support.
    assert_eq!(enqueue(&mut r, 1, 0, t.at(10)), vec![ring(1, 0)]);
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(12));
    // Caller 2 joins billing later, while bob is away.
    let later = RouterEvent::Enqueue {
        call: 2,
        queue: 1,
        priority: 0,
    };
    assert!(r.handle(later, t.at(20)).is_empty());
    // Alice passes caller 1 on to billing: she wraps up, the caller waits there, first.
    let moved = r.handle(RouterEvent::Transfer { call: 1, queue: 1 }, t.at(30));
    assert!(moved.is_empty(), "nobody serves billing yet: {moved:?}");
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(r.connected_agent(1), None);
    assert_eq!(r.queue_figures(1, t.at(30)).unwrap().waiting, 2);
    // Bob arrives: the transferred caller, who called first, is rung before caller 2.
    assert_eq!(
        r.handle(RouterEvent::Registered { agent: 1 }, t.at(31)),
        vec![ring(1, 1)]
    );
    // A call not connected, or a queue that does not exist, is no transfer.
    assert!(
        r.handle(RouterEvent::Transfer { call: 2, queue: 0 }, t.at(32))
            .is_empty()
    );
    assert_eq!(r.queue_figures(0, t.at(32)).unwrap().waiting, 0);
    r.handle(RouterEvent::Answered { call: 1, agent: 1 }, t.at(33));
    assert!(
        r.handle(RouterEvent::Transfer { call: 1, queue: 9 }, t.at(34))
            .is_empty()
    );
    assert_eq!(r.connected_agent(1), Some(1));
}

/// An agent passes her caller on to a colleague by name: he is rung while she keeps the
/// caller; he answers and she wraps up. Declined or unanswered, the caller is hers again;
/// if she is gone, the caller waits first in line.
#[test]
fn an_agent_passes_a_caller_to_another_agent_and_gets_them_back_when_he_does_not_answer() {
    let (mut r, t) = three(Strategy::LongestIdle);
    assert_eq!(enqueue(&mut r, 1, 0, t.at(10)), vec![ring(1, 0)]);
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    // b is rung for the call a passes on; a stays busy with it until b answers.
    let pass = RouterEvent::PassTo { call: 1, agent: 1 };
    assert_eq!(r.handle(pass.clone(), t.at(20)), vec![ring(1, 1)]);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Ringing);
    assert_eq!(r.connected_agent(1), Some(0));
    assert_eq!(r.passing_to(1), Some(1));
    // A second pass while one rings, or to oneself, or to a busy agent, does nothing.
    assert!(r.handle(pass.clone(), t.at(20)).is_empty());
    // b declines: the caller is a's again, b is free.
    r.handle(RouterEvent::Declined { call: 1, agent: 1 }, t.at(21));
    assert_eq!(r.connected_agent(1), Some(0));
    assert_eq!(r.passing_to(1), None);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Available);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert!(
        r.handle(RouterEvent::PassTo { call: 1, agent: 0 }, t.at(22))
            .is_empty()
    );
    // Passed to c, who does not answer in the queue's 15 s: c is set not-ready, a has it.
    assert_eq!(
        r.handle(RouterEvent::PassTo { call: 1, agent: 2 }, t.at(30)),
        vec![ring(1, 2)]
    );
    let missed = r.handle(RouterEvent::Timer, t.at(45));
    assert_eq!(
        missed,
        vec![RouterAction::CancelRing {
            call: 1,
            agent: 2,
            elsewhere: false
        }]
    );
    assert_eq!(r.agent_state(2).unwrap().0, AgentState::NotReady);
    assert_eq!(r.connected_agent(1), Some(0));
    // Passed to b, who answers: a wraps up, b has the caller.
    assert_eq!(r.handle(pass, t.at(50)), vec![ring(1, 1)]);
    r.handle(RouterEvent::Answered { call: 1, agent: 1 }, t.at(52));
    assert_eq!(r.connected_agent(1), Some(1));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Busy);
    // Caller 2 waits; b's phone is gone during the call: caller 1 waits ahead of caller 2.
    assert!(enqueue(&mut r, 2, 0, t.at(53)).is_empty());
    r.handle(RouterEvent::Requeue { call: 1 }, t.at(54));
    assert_eq!(r.connected_agent(1), None);
    assert_eq!(r.position(1), Some(0));
    assert_eq!(r.position(2), Some(1));
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::WrapUp);
}

/// The caller hanging up while their agent passes them on stops the ring and frees both.
#[test]
fn a_caller_leaving_while_passed_on_frees_both_agents() {
    let (mut r, t) = three(Strategy::LongestIdle);
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    r.handle(RouterEvent::PassTo { call: 1, agent: 2 }, t.at(20));
    let out = r.handle(RouterEvent::Ended { call: 1 }, t.at(21));
    assert_eq!(
        out,
        vec![RouterAction::CancelRing {
            call: 1,
            agent: 2,
            elsewhere: false
        }]
    );
    assert_eq!(r.agent_state(2).unwrap().0, AgentState::Available);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(r.poll_timeout(), Some(t.at(31)), "only a's wrap-up is left");
}

/// An attended transfer: a consults b about her caller. While b rings and while they talk,
/// the caller is a's and both are busy; nobody else is offered to either. She completes:
/// the caller is b's, she wraps up. A consultation that ends (either hangs up, or b does
/// not answer) leaves the caller with her and frees him.
#[test]
fn an_agent_consults_a_colleague_then_hands_the_caller_over() {
    let (mut r, t) = three(Strategy::LongestIdle);
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    let consult = RouterEvent::Consult { call: 1, agent: 1 };
    assert_eq!(r.handle(consult.clone(), t.at(20)), vec![ring(1, 1)]);
    assert_eq!(r.pass_kind(1), Some(PassKind::Consult));
    // b answers: they talk, the caller is still a's, no ring deadline is left for b.
    assert!(
        r.handle(RouterEvent::Answered { call: 1, agent: 1 }, t.at(22))
            .is_empty()
    );
    assert_eq!(r.pass_kind(1), Some(PassKind::Consulting));
    assert_eq!(r.connected_agent(1), Some(0));
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    assert_eq!(
        r.agent_state(1).unwrap(),
        (AgentState::Busy, t.at(22), Some(1))
    );
    // A long talk: no ring-no-answer for b, and a new caller is not offered to either.
    assert_eq!(enqueue(&mut r, 2, 0, t.at(23)), vec![ring(2, 2)]);
    r.handle(RouterEvent::Declined { call: 2, agent: 2 }, t.at(24));
    // c is offered caller 2 again after the retry time; a and b never are.
    assert_eq!(r.handle(RouterEvent::Timer, t.at(90)), vec![ring(2, 2)]);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Busy);
    // A decline of b's (a stray event) does not end their talk.
    assert!(
        r.handle(RouterEvent::Declined { call: 1, agent: 1 }, t.at(91))
            .is_empty()
    );
    assert_eq!(r.pass_kind(1), Some(PassKind::Consulting));
    // a hands the caller over: b has them, a wraps up.
    r.handle(RouterEvent::Complete { call: 1 }, t.at(95));
    assert_eq!(r.connected_agent(1), Some(1));
    assert_eq!(r.passing_to(1), None);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
    assert_eq!(
        r.agent_state(1).unwrap(),
        (AgentState::Busy, t.at(22), Some(1))
    );
    // Complete and EndConsult without a consultation do nothing.
    assert!(
        r.handle(RouterEvent::Complete { call: 1 }, t.at(96))
            .is_empty()
    );
    assert!(
        r.handle(RouterEvent::EndConsult { call: 1 }, t.at(96))
            .is_empty()
    );
    assert_eq!(r.connected_agent(1), Some(1));
}

/// Calling a queue about her caller, an agent reaches whom its next caller would: never
/// herself, nobody busy.
#[test]
fn an_agent_calling_a_queue_reaches_its_next_available_agent() {
    let (mut r, t) = three(Strategy::LongestIdle);
    // Longest idle first: a (registered first), then b, then c.
    assert_eq!(r.next_available(0, 2), Some(0));
    assert_eq!(r.next_available(0, 0), Some(1));
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    assert_eq!(r.next_available(0, 0), Some(1));
    r.handle(RouterEvent::Consult { call: 1, agent: 1 }, t.at(12));
    assert_eq!(r.next_available(0, 0), Some(2));
    r.handle(
        RouterEvent::SetState {
            agent: 2,
            state: Requested::NotReady,
            reason: None,
        },
        t.at(13),
    );
    assert_eq!(r.next_available(0, 0), None);
    assert_eq!(r.next_available(7, 0), None, "no such queue");
}

#[test]
fn a_consultation_that_ends_leaves_the_caller_with_their_agent() {
    let (mut r, t) = three(Strategy::LongestIdle);
    enqueue(&mut r, 1, 0, t.at(10));
    r.handle(RouterEvent::Answered { call: 1, agent: 0 }, t.at(11));
    // Ended while b rings: his ring is cancelled.
    r.handle(RouterEvent::Consult { call: 1, agent: 1 }, t.at(20));
    let out = r.handle(RouterEvent::EndConsult { call: 1 }, t.at(21));
    let cancel = |agent| RouterAction::CancelRing {
        call: 1,
        agent,
        elsewhere: false,
    };
    assert_eq!(out, vec![cancel(1)]);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Available);
    assert_eq!(r.connected_agent(1), Some(0));
    assert_eq!(r.pass_kind(1), None);
    // Ended while they talk: b is free at once, nothing to cancel; a still has the caller.
    r.handle(RouterEvent::Consult { call: 1, agent: 1 }, t.at(30));
    r.handle(RouterEvent::Answered { call: 1, agent: 1 }, t.at(31));
    assert!(
        r.handle(RouterEvent::EndConsult { call: 1 }, t.at(40))
            .is_empty()
    );
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::Available);
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::Busy);
    // b not answering in the queue's ring time: the caller is a's, b is set not-ready.
    r.handle(RouterEvent::Consult { call: 1, agent: 1 }, t.at(50));
    assert_eq!(r.handle(RouterEvent::Timer, t.at(65)), vec![cancel(1)]);
    assert_eq!(r.agent_state(1).unwrap().0, AgentState::NotReady);
    assert_eq!(r.connected_agent(1), Some(0));
    // The caller hangs up while a and b talk: both are free of the call.
    r.handle(RouterEvent::Consult { call: 1, agent: 2 }, t.at(70));
    r.handle(RouterEvent::Answered { call: 1, agent: 2 }, t.at(71));
    assert!(
        r.handle(RouterEvent::Ended { call: 1 }, t.at(80))
            .is_empty()
    );
    assert_eq!(
        r.agent_state(2).unwrap(),
        (AgentState::Available, t.at(80), None)
    );
    assert_eq!(r.agent_state(0).unwrap().0, AgentState::WrapUp);
}

/// A returning caller asking for whoever has their follow-up: that agent is rung first, alone,
/// even when another has been free longer; unanswered, the caller waits ahead of everyone and
/// the others are rung. With the owner not ready, the caller waits at the head at once.
#[test]
fn a_returning_caller_rings_the_owner_first_then_waits_at_the_head() {
    let not_ready = |r: &mut Router, a: AgentId, at: Instant| {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::NotReady,
                reason: None,
            },
            at,
        )
    };
    let available = |r: &mut Router, a: AgentId, at: Instant| {
        r.handle(
            RouterEvent::SetState {
                agent: a,
                state: Requested::Available,
                reason: None,
            },
            at,
        )
    };
    // Agent 2 ("c") has the follow-up and is the only one ready, though not free longest.
    let (mut r, t) = three(Strategy::LongestIdle);
    not_ready(&mut r, 0, t.at(4));
    not_ready(&mut r, 1, t.at(4));
    let out = r.handle(
        RouterEvent::EnqueueReturning {
            call: 7,
            queue: 0,
            owner: Some(2),
        },
        t.at(8),
    );
    assert_eq!(out, vec![ring(7, 2)]);
    // A later caller with a high priority; the owner does not answer within the ring time.
    enqueue(&mut r, 3, 100, t.at(9));
    r.handle(RouterEvent::Timer, t.at(8 + 15));
    // The next agent free takes the returning caller first: they were at the head.
    assert_eq!(available(&mut r, 0, t.at(30)), vec![ring(7, 0)]);
    // The owner not ready: no ring for them; the caller waits ahead of earlier callers.
    let (mut r, t) = three(Strategy::LongestIdle);
    for a in 0..3 {
        not_ready(&mut r, a, t.at(4));
    }
    enqueue(&mut r, 1, 50, t.at(5));
    let out = r.handle(
        RouterEvent::EnqueueReturning {
            call: 7,
            queue: 0,
            owner: Some(2),
        },
        t.at(6),
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(available(&mut r, 0, t.at(7)), vec![ring(7, 0)]);
}
