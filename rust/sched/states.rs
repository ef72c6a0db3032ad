//! Atom states and intentions with TaskFlow's transition tables (`taskflow.states`).
//! The numeric codes are shared with Python (`ferroflow.states.ATOM_STATE_CODES` / `INTENTION_CODES`).

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    Pending = 0,
    Running = 1,
    Success = 2,
    Failure = 3,
    Reverting = 4,
    Reverted = 5,
    RevertFailure = 6,
    Ignore = 7,
    Retrying = 8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Intention {
    Execute = 0,
    Revert = 1,
    Retry = 2,
    Ignore = 3,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Pending,
        State::Running,
        State::Success,
        State::Failure,
        State::Reverting,
        State::Reverted,
        State::RevertFailure,
        State::Ignore,
        State::Retrying,
    ];

    pub fn from_code(code: u8) -> Option<State> {
        Self::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
            State::Reverting => "REVERTING",
            State::Reverted => "REVERTED",
            State::RevertFailure => "REVERT_FAILURE",
            State::Ignore => "IGNORE",
            State::Retrying => "RETRYING",
        }
    }

    pub fn from_name(name: &str) -> Option<State> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Intention {
    pub const ALL: [Intention; 4] = [Intention::Execute, Intention::Revert, Intention::Retry, Intention::Ignore];

    pub fn from_code(code: u8) -> Option<Intention> {
        Self::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Intention::Execute => "EXECUTE",
            Intention::Revert => "REVERT",
            Intention::Retry => "RETRY",
            Intention::Ignore => "IGNORE",
        }
    }

    pub fn from_name(name: &str) -> Option<Intention> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// TaskFlow's task state machine; retries additionally allow SUCCESS→RETRYING→RUNNING.
pub fn atom_transition_allowed(is_retry: bool, from: State, to: State) -> bool {
    use State::{Failure, Ignore, Pending, Retrying, RevertFailure, Reverted, Reverting, Running, Success};
    matches!(
        (from, to),
        (Pending, Running | Ignore)
            | (Running, Success | Failure)
            | (Failure | Success, Reverting)
            | (Reverting, Reverted | RevertFailure)
            | (Reverted | Ignore, Pending)
    ) || (is_retry && matches!((from, to), (Success, Retrying) | (Retrying, Running)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in State::ALL {
            assert_eq!(State::from_code(s as u8), Some(s));
            assert_eq!(State::from_name(s.name()), Some(s));
        }
        for i in Intention::ALL {
            assert_eq!(Intention::from_code(i as u8), Some(i));
            assert_eq!(Intention::from_name(i.name()), Some(i));
        }
        assert_eq!(State::from_code(9), None);
    }

    #[test]
    fn task_table_matches_taskflow() {
        assert!(atom_transition_allowed(false, State::Pending, State::Running));
        assert!(atom_transition_allowed(false, State::Failure, State::Reverting));
        assert!(!atom_transition_allowed(false, State::Pending, State::Reverting));
        assert!(!atom_transition_allowed(false, State::Success, State::Retrying));
        assert!(atom_transition_allowed(true, State::Success, State::Retrying));
        assert!(atom_transition_allowed(true, State::Retrying, State::Running));
        assert!(!atom_transition_allowed(false, State::RevertFailure, State::Pending));
    }
}
