//! The key lifecycle (NIST SP 800-57 Part 1 Rev. 5, section 7; states as in
//! KMIP): the one table of which state may follow which, and what each
//! state allows.

use std::fmt;
use std::str::FromStr;

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Created but not yet usable (awaiting activation).
    PreActive,
    /// In its cryptoperiod: protects and processes.
    Active,
    /// Past its use for protection: may still process (decrypt, verify).
    Deactivated,
    /// Suspected or known to be disclosed: may still process, to recover data.
    Compromised,
    /// Key material deleted; metadata kept. Terminal.
    Destroyed,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 5] = [
        Self::PreActive,
        Self::Active,
        Self::Deactivated,
        Self::Compromised,
        Self::Destroyed,
    ];

    /// Whether the lifecycle allows going from `self` to `to`.
    pub fn can_become(self, to: KeyState) -> bool {
        use KeyState::*;
        matches!(
            (self, to),
            (PreActive, Active | Compromised | Destroyed)
                | (Active, Deactivated | Compromised | Destroyed)
                | (Deactivated, Compromised | Destroyed)
                | (Compromised, Destroyed)
        )
    }

    /// Whether keys in this state may protect new data (encrypt, sign,
    /// generate MACs and data keys).
    pub fn may_protect(self) -> bool {
        self == Self::Active
    }

    /// Whether keys in this state may process protected data (decrypt,
    /// verify signatures and MACs).
    pub fn may_process(self) -> bool {
        matches!(self, Self::Active | Self::Deactivated | Self::Compromised)
    }

    /// Whether a destruction may be scheduled: not while the key is active
    /// (deactivate it first) and not once it is destroyed.
    pub fn may_schedule_destroy(self) -> bool {
        matches!(
            self,
            Self::PreActive | Self::Deactivated | Self::Compromised
        )
    }

    /// The name used in APIs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreActive => "pre-active",
            Self::Active => "active",
            Self::Deactivated => "deactivated",
            Self::Compromised => "compromised",
            Self::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown key state {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyState::{self, *};

    /// The whole table, written out: every pair not listed is illegal.
    const LEGAL: &[(KeyState, KeyState)] = &[
        (PreActive, Active),
        (PreActive, Compromised),
        (PreActive, Destroyed),
        (Active, Deactivated),
        (Active, Compromised),
        (Active, Destroyed),
        (Deactivated, Compromised),
        (Deactivated, Destroyed),
        (Compromised, Destroyed),
    ];

    #[test]
    fn only_the_listed_transitions_are_legal() {
        for from in KeyState::ALL {
            for to in KeyState::ALL {
                assert_eq!(
                    from.can_become(to),
                    LEGAL.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn states_allow_protecting_and_processing_as_sp_800_57_says() {
        let protect: Vec<_> = KeyState::ALL
            .into_iter()
            .filter(|s| s.may_protect())
            .collect();
        let process: Vec<_> = KeyState::ALL
            .into_iter()
            .filter(|s| s.may_process())
            .collect();
        assert_eq!(protect, [Active]);
        assert_eq!(process, [Active, Deactivated, Compromised]);
        assert!(!Destroyed.can_become(Active) && !Deactivated.can_become(Active));
    }

    #[test]
    fn names_round_trip() {
        for state in KeyState::ALL {
            assert_eq!(state.as_str().parse::<KeyState>().unwrap(), state);
        }
        assert!("enabled".parse::<KeyState>().is_err());
    }
}
