//! The state machine a browser walks through (password, then a second factor, an
//! enrolment or a replacement) before an authorization code may be issued. Illegal
//! transitions return errors instead of states.

use serde::{Deserialize, Serialize};

use super::AuthRequest;
use crate::domain::enrolment::{CodeGate, Replacement};
use crate::domain::ids::UserId;
use crate::domain::methods::{AMR_BYPASS_CODE, AMR_MFA, AMR_OTP, AMR_PASSWORD};

/// Where a sign-in stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Waiting for username and password.
    Password,
    /// Password verified; waiting for a TOTP or bypass code.
    SecondFactor { user_id: UserId, auth_time: i64 },
    /// Password verified, no authenticator, and setting one up takes a bypass code first
    /// (`domain::enrolment`): waiting for the code.
    EnrolCode {
        user_id: UserId,
        auth_time: i64,
        gate: CodeGate,
    },
    /// Password verified, no second factor, but one is required: waiting for TOTP enrolment.
    /// `bypass_code`: the code that opened the way to it (then the code is this sign-in's
    /// second factor).
    Enroll {
        user_id: UserId,
        auth_time: i64,
        #[serde(default)]
        bypass_code: Option<String>,
    },
    /// Signed in with the bypass code `bypass_code`: a new authenticator may (or, when
    /// `required`, must) replace the lost one before the sign-in goes on. `setup`: the new
    /// key this flow was shown (its set-up id, `MfaService::begin_replacement`); only that
    /// key is shown again or confirmed here.
    Replace {
        user_id: UserId,
        auth_time: i64,
        amr: Vec<String>,
        bypass_code: String,
        required: bool,
        #[serde(default)]
        setup: Option<String>,
    },
    /// Signed in with a code of the user's printable set, and few of the set are left
    /// (`Flow::saved_codes_left`), where no offer to set up a new authenticator says so: the
    /// page says it before the sign-in goes on.
    SavedCodesLow {
        user_id: UserId,
        auth_time: i64,
        amr: Vec<String>,
        bypass_code: String,
    },
    /// An authenticator was just set up, but the client needs 2-step verification: a factor
    /// set up during a sign-in proves nothing about that sign-in, so the person signs in
    /// again (password, then the new factor). Waits for the password like [`Step::Password`].
    SignInAgain,
    /// Done: an authorization code may be issued.
    Authenticated {
        user_id: UserId,
        auth_time: i64,
        amr: Vec<String>,
        /// The bypass code the second step used: revoking it ends this sign-in's grant.
        #[serde(default)]
        bypass_code: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    BypassCode { code_id: String },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("this step does not fit the sign-in's state")]
pub struct IllegalStep;

/// A sign-in in progress, kept server-side behind an opaque cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub request: AuthRequest,
    /// Echoed by every form; compared in constant time.
    pub csrf: String,
    pub step: Step,
    /// The sign-in session the browser had when the request came (its public id): a sign-in
    /// that ends replaces it.
    #[serde(default)]
    pub browser_session: Option<String>,
    /// The flow asks only for the second step of `browser_session`, a password-only session.
    #[serde(default)]
    pub step_up: bool,
    /// When the whole sign-in ends, used or not (Unix seconds; 0 in a flow saved before
    /// deadlines were kept). Saving a step does not move it.
    #[serde(default)]
    pub deadline: i64,
    /// This sign-in set the user's authenticator (enrolled or replaced it): a factor set after
    /// its password check does not void it.
    #[serde(default)]
    pub factor_set_here: bool,
    /// A code of the user's printable set was used and this few of the set are left (told
    /// only when two or fewer remain).
    #[serde(default)]
    pub saved_codes_left: Option<u64>,
}

impl Flow {
    pub fn new(request: AuthRequest, csrf: String, browser_session: Option<String>) -> Self {
        Self {
            request,
            csrf,
            step: Step::Password,
            browser_session,
            step_up: false,
            deadline: 0,
            factor_set_here: false,
            saved_codes_left: None,
        }
    }

    /// A flow that asks a password-only session (`session_id`, signed in at `auth_time`)
    /// for its second step.
    pub fn second_step(
        request: AuthRequest,
        csrf: String,
        session_id: String,
        user_id: UserId,
        auth_time: i64,
    ) -> Self {
        Self {
            request,
            csrf,
            step: Step::SecondFactor { user_id, auth_time },
            browser_session: Some(session_id),
            step_up: true,
            deadline: 0,
            factor_set_here: false,
            saved_codes_left: None,
        }
    }

    /// The password was right. `has_totp`: the user has a confirmed factor;
    /// `user_requires_mfa`: the user's own `mfaRequired`; `gate`: setting up an authenticator
    /// takes a bypass code. After a reset every sign-in asks for it, as it asked for the
    /// authenticator before; an administrator's first authenticator, when one is set up.
    pub fn password_verified(
        self,
        user_id: UserId,
        auth_time: i64,
        has_totp: bool,
        user_requires_mfa: bool,
        gate: Option<CodeGate>,
    ) -> Result<Self, IllegalStep> {
        if !self.wants_password() {
            return Err(IllegalStep);
        }
        let enrols = self.request.mfa_requested || user_requires_mfa;
        let step = if has_totp {
            Step::SecondFactor { user_id, auth_time }
        } else if let Some(gate) = gate.filter(|g| *g == CodeGate::AfterReset || enrols) {
            Step::EnrolCode {
                user_id,
                auth_time,
                gate,
            }
        } else if enrols {
            Step::Enroll {
                user_id,
                auth_time,
                bypass_code: None,
            }
        } else {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: vec![AMR_PASSWORD.to_owned()],
                bypass_code: None,
            }
        };
        Ok(Self { step, ..self })
    }

    /// The second factor was right. After a bypass code, `replacement` (the policy) says
    /// whether setting up a new authenticator is offered or required first.
    pub fn second_factor_verified(
        self,
        factor: SecondFactor,
        replacement: Replacement,
    ) -> Result<Self, IllegalStep> {
        let Step::SecondFactor { user_id, auth_time } = self.step else {
            return Err(IllegalStep);
        };
        let (method, bypass_code) = match factor {
            SecondFactor::Totp => (AMR_OTP, None),
            SecondFactor::BypassCode { code_id } => (AMR_BYPASS_CODE, Some(code_id)),
        };
        let amr = code_amr(method);
        let step = match bypass_code {
            Some(code) if replacement != Replacement::Off => Step::Replace {
                user_id,
                auth_time,
                amr,
                bypass_code: code,
                required: replacement == Replacement::Required,
                setup: None,
            },
            bypass_code => Step::Authenticated {
                user_id,
                auth_time,
                amr,
                bypass_code,
            },
        };
        Ok(Self { step, ..self })
    }

    /// The bypass code in front of setting up an authenticator was right: the set-up follows,
    /// and the code is this sign-in's second factor.
    pub fn enrolment_code_verified(self, code_id: String) -> Result<Self, IllegalStep> {
        let Step::EnrolCode {
            user_id, auth_time, ..
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::Enroll {
                user_id,
                auth_time,
                bypass_code: Some(code_id),
            },
            ..self
        })
    }

    /// A new key for the replacing authenticator was shown (`setup` names it), or, with
    /// `None`, the one shown is no longer being set up.
    pub fn replacement_started(mut self, setup: Option<String>) -> Result<Self, IllegalStep> {
        let Step::Replace { setup: shown, .. } = &mut self.step else {
            return Err(IllegalStep);
        };
        *shown = setup;
        Ok(self)
    }

    /// A sign-in with a saved code, with few of the set left and nothing else to show: it
    /// stops to say so (`Flow::saved_codes_left`), once.
    pub fn saved_codes_low(self) -> Result<Self, IllegalStep> {
        let Step::Authenticated {
            user_id,
            auth_time,
            amr,
            bypass_code: Some(bypass_code),
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::SavedCodesLow {
                user_id,
                auth_time,
                amr,
                bypass_code,
            },
            ..self
        })
    }

    /// "Continue" after the saved codes notice.
    pub fn notice_read(self) -> Result<Self, IllegalStep> {
        let Step::SavedCodesLow {
            user_id,
            auth_time,
            amr,
            bypass_code,
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::Authenticated {
                user_id,
                auth_time,
                amr,
                bypass_code: Some(bypass_code),
            },
            saved_codes_left: None,
            ..self
        })
    }

    /// "Not now": the sign-in goes on with the old authenticator, unless the policy
    /// requires replacing it.
    pub fn replacement_skipped(self) -> Result<Self, IllegalStep> {
        match self.step {
            Step::Replace { required: true, .. } => Err(IllegalStep),
            Step::Replace { .. } => self.replace_done(),
            _ => Err(IllegalStep),
        }
    }

    /// The new authenticator replaced the old one, and the user's other sessions ended:
    /// the sign-in goes on, and opens a session of its own.
    pub fn replaced(self) -> Result<Self, IllegalStep> {
        let mut done = self.replace_done()?;
        done.browser_session = None;
        done.step_up = false;
        done.factor_set_here = true;
        Ok(done)
    }

    /// Setting up a new authenticator is no longer possible (the policy turned it off, the
    /// authenticator was reset, the bypass code was revoked): the sign-in goes on as it
    /// stands, even where it was required; whether it may still finish is `finish`'s to say.
    pub fn replacement_withdrawn(self) -> Result<Self, IllegalStep> {
        self.replace_done()
    }

    fn replace_done(self) -> Result<Self, IllegalStep> {
        let Step::Replace {
            user_id,
            auth_time,
            amr,
            bypass_code,
            ..
        } = self.step
        else {
            return Err(IllegalStep);
        };
        Ok(Self {
            step: Step::Authenticated {
                user_id,
                auth_time,
                amr,
                bypass_code: Some(bypass_code),
            },
            ..self
        })
    }

    /// The first authenticator was confirmed during this sign-in. It was not confirmed before
    /// the sign-in began, so it is no second factor of it: the sign-in stands on the password
    /// (`amr ["pwd"]`) where that is enough, and elsewhere starts again. A bypass code that
    /// opened the way to the set-up is the second factor (`amr ["pwd","mfa","bypass_code"]`).
    pub fn enrolled(self) -> Result<Self, IllegalStep> {
        let Step::Enroll {
            user_id,
            auth_time,
            bypass_code,
        } = self.step
        else {
            return Err(IllegalStep);
        };
        let step = if let Some(code) = bypass_code {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: code_amr(AMR_BYPASS_CODE),
                bypass_code: Some(code),
            }
        } else if self.request.mfa_requested {
            Step::SignInAgain
        } else {
            Step::Authenticated {
                user_id,
                auth_time,
                amr: vec![AMR_PASSWORD.to_owned()],
                bypass_code: None,
            }
        };
        // Finishing now, it set the factor itself; signing in again checks a new password.
        let factor_set_here = matches!(step, Step::Authenticated { .. });
        Ok(Self {
            step,
            factor_set_here,
            ..self
        })
    }

    /// Whether the flow waits for a username and password.
    pub fn wants_password(&self) -> bool {
        matches!(self.step, Step::Password | Step::SignInAgain)
    }

    /// The user whose password was verified, once it was.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.step {
            Step::Password | Step::SignInAgain => None,
            Step::SecondFactor { user_id, .. }
            | Step::EnrolCode { user_id, .. }
            | Step::Enroll { user_id, .. }
            | Step::Replace { user_id, .. }
            | Step::SavedCodesLow { user_id, .. }
            | Step::Authenticated { user_id, .. } => Some(user_id),
        }
    }
}

/// The methods of a sign-in whose second step was `method`.
fn code_amr(method: &str) -> Vec<String> {
    vec![
        AMR_PASSWORD.to_owned(),
        AMR_MFA.to_owned(),
        method.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::methods::{ACR_MFA, ACR_PASSWORD, acr_for};
    use crate::domain::signin::parse_auth_request;
    use crate::domain::signin::request::tests::{client, params};

    fn flow(mfa_requested: bool) -> Flow {
        let mut request = parse_auth_request(&params(&[]), &client(false)).unwrap();
        request.mfa_requested = mfa_requested;
        Flow::new(request, "csrf".into(), None)
    }

    #[test]
    fn password_then_second_factor() {
        let f = flow(false)
            .password_verified(UserId::new("u"), 10, true, false, None)
            .unwrap();
        assert_eq!(f.user_id(), Some(&UserId::new("u")));
        let done = f
            .clone()
            .second_factor_verified(
                SecondFactor::BypassCode {
                    code_id: "c1".into(),
                },
                Replacement::Off,
            )
            .unwrap();
        assert_eq!(
            done.step,
            Step::Authenticated {
                user_id: UserId::new("u"),
                auth_time: 10,
                amr: vec!["pwd".into(), "mfa".into(), "bypass_code".into()],
                bypass_code: Some("c1".into()),
            }
        );
        let totp = f
            .second_factor_verified(SecondFactor::Totp, Replacement::Offered)
            .unwrap();
        let Step::Authenticated { amr, .. } = &totp.step else {
            panic!()
        };
        assert_eq!(acr_for(amr), ACR_MFA);
        // Few saved codes left: the sign-in stops once to say so, then goes on as it was.
        let mut low = done.clone();
        low.saved_codes_left = Some(1);
        let stopped = low.saved_codes_low().unwrap();
        assert!(matches!(stopped.step, Step::SavedCodesLow { .. }));
        assert_eq!(stopped.clone().saved_codes_low(), Err(IllegalStep));
        let read = stopped.notice_read().unwrap();
        assert_eq!(read.step, done.step);
        assert_eq!(read.saved_codes_left, None);
        assert_eq!(
            totp.saved_codes_low(),
            Err(IllegalStep),
            "no code, no notice"
        );
        assert_eq!(done.notice_read(), Err(IllegalStep));
    }

    #[test]
    fn no_factor_means_password_only_unless_mfa_is_required() {
        let f = flow(false)
            .password_verified(UserId::new("u"), 1, false, false, None)
            .unwrap();
        let Step::Authenticated { amr, .. } = &f.step else {
            panic!("{f:?}")
        };
        assert_eq!(amr, &["pwd".to_owned()]);
        assert_eq!(acr_for(amr), ACR_PASSWORD);
        assert!(matches!(
            flow(true)
                .password_verified(UserId::new("u"), 1, false, false, None)
                .unwrap()
                .step,
            Step::Enroll { .. }
        ));
        assert!(matches!(
            flow(false)
                .password_verified(UserId::new("u"), 1, false, true, None)
                .unwrap()
                .step,
            Step::Enroll { .. }
        ));
        assert!(!f.factor_set_here, "a password alone sets no factor");
        // A factor set up during the sign-in is no second factor of it.
        let enrolled = flow(false)
            .password_verified(UserId::new("u"), 1, false, true, None)
            .unwrap()
            .enrolled()
            .unwrap();
        let Step::Authenticated { amr, .. } = &enrolled.step else {
            panic!("{enrolled:?}")
        };
        assert_eq!(amr, &["pwd".to_owned()]);
        assert_eq!(acr_for(amr), ACR_PASSWORD);
        assert!(
            enrolled.factor_set_here,
            "it set the factor it finishes after"
        );
        // Where 2-step verification is required, the person signs in again, and then the
        // new factor is the second step.
        let again = flow(true)
            .password_verified(UserId::new("u"), 1, false, false, None)
            .unwrap()
            .enrolled()
            .unwrap();
        assert_eq!(again.step, Step::SignInAgain);
        assert_eq!(again.user_id(), None);
        let second = again
            .password_verified(UserId::new("u"), 2, true, false, None)
            .unwrap()
            .second_factor_verified(SecondFactor::Totp, Replacement::Offered)
            .unwrap();
        let Step::Authenticated { amr, .. } = &second.step else {
            panic!("{second:?}")
        };
        assert_eq!(acr_for(amr), ACR_MFA);
    }

    #[test]
    fn after_a_reset_every_sign_in_asks_for_a_code_then_sets_up_an_authenticator() {
        let u = || UserId::new("u");
        // Even a client that asks for no 2-step verification: the account had it.
        let gated = flow(false)
            .password_verified(u(), 5, false, false, Some(CodeGate::AfterReset))
            .unwrap();
        assert!(matches!(gated.step, Step::EnrolCode { .. }), "{gated:?}");
        assert_eq!(gated.clone().enrolled(), Err(IllegalStep));
        let done = gated
            .enrolment_code_verified("c9".into())
            .unwrap()
            .enrolled()
            .unwrap();
        assert_eq!(
            done.step,
            Step::Authenticated {
                user_id: u(),
                auth_time: 5,
                amr: vec!["pwd".into(), "mfa".into(), "bypass_code".into()],
                bypass_code: Some("c9".into()),
            }
        );
        // An administrator's first authenticator: gated where one is set up, and a
        // password-only sign-in elsewhere is unchanged.
        let admin = Some(CodeGate::Administrator);
        assert!(matches!(
            flow(true)
                .password_verified(u(), 1, false, false, admin)
                .unwrap()
                .step,
            Step::EnrolCode { .. }
        ));
        assert!(matches!(
            flow(false)
                .password_verified(u(), 1, false, false, admin)
                .unwrap()
                .step,
            Step::Authenticated { .. }
        ));
        // A user with an authenticator is asked for it, gate or not.
        assert!(matches!(
            flow(false)
                .password_verified(u(), 1, true, false, admin)
                .unwrap()
                .step,
            Step::SecondFactor { .. }
        ));
    }

    #[test]
    fn a_bypass_code_sign_in_offers_or_requires_a_new_authenticator() {
        let code = || SecondFactor::BypassCode {
            code_id: "c1".into(),
        };
        let second = || {
            let mut f = flow(false)
                .password_verified(UserId::new("u"), 1, true, false, None)
                .unwrap();
            f.browser_session = Some("old".into());
            f.step_up = true;
            f
        };
        let offered = second()
            .second_factor_verified(code(), Replacement::Offered)
            .unwrap();
        assert!(matches!(
            offered.step,
            Step::Replace {
                required: false,
                ..
            }
        ));
        let skipped = offered.clone().replacement_skipped().unwrap();
        assert!(matches!(skipped.step, Step::Authenticated { .. }));
        assert!(
            skipped.step_up,
            "Not now keeps the session being stepped up"
        );
        let replaced = offered
            .replacement_started(Some("s1".into()))
            .unwrap()
            .replaced()
            .unwrap();
        let Step::Authenticated {
            amr, bypass_code, ..
        } = &replaced.step
        else {
            panic!("{replaced:?}")
        };
        assert_eq!(amr, &["pwd", "mfa", "bypass_code"]);
        assert_eq!(bypass_code.as_deref(), Some("c1"));
        // The replacement ended the user's sessions: this sign-in opens its own.
        assert_eq!((replaced.browser_session, replaced.step_up), (None, false));
        let required = second()
            .second_factor_verified(code(), Replacement::Required)
            .unwrap();
        assert_eq!(required.replacement_skipped(), Err(IllegalStep));
        let off = second()
            .second_factor_verified(code(), Replacement::Off)
            .unwrap();
        assert!(matches!(off.step, Step::Authenticated { .. }));
        // The authenticator itself is no reason to replace it.
        let totp = second()
            .second_factor_verified(SecondFactor::Totp, Replacement::Required)
            .unwrap();
        assert!(matches!(totp.step, Step::Authenticated { .. }));
    }

    #[test]
    fn illegal_transitions_are_refused() {
        assert_eq!(
            flow(false).second_factor_verified(SecondFactor::Totp, Replacement::Offered),
            Err(IllegalStep)
        );
        assert_eq!(flow(false).enrolled(), Err(IllegalStep));
        let second = flow(false)
            .password_verified(UserId::new("u"), 1, true, false, None)
            .unwrap();
        assert_eq!(
            second
                .clone()
                .password_verified(UserId::new("v"), 1, true, false, None),
            Err(IllegalStep)
        );
        assert_eq!(second.enrolled(), Err(IllegalStep));
    }
}
