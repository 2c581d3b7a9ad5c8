//! Who the caller is, as shown on the other leg (RFC 3325, RFC 3323).
//!
//! - From a trunk with `inbound.trust_identity`, the caller's number (and
//!   name) come from `P-Asserted-Identity` when present, else `From`.
//! - A user calling out through a trunk shows their `caller_id`, else the
//!   trunk's `outbound.caller_id`, else their name.
//! - A caller whose INVITE says `Privacy: id` (or `user`/`header`) is shown
//!   as "Anonymous" <sip:anonymous@anonymous.invalid>; towards a trunk the
//!   INVITE says `Privacy: id` too. A trunk with `outbound.assert_identity`
//!   gets the real number in `P-Asserted-Identity` either way.
//!
//! - A trunk with `inbound.normalize` has the caller's number in E.164
//!   (`[numbering]`); a trunk's `outbound.number_format` writes the number
//!   shown (and asserted) as the carrier wants it.
//!
//! The CDR keeps the real number.

use super::*;

/// The caller as the switch knows them: number, name, and whether they
/// asked not to be shown.
pub(super) struct CallerId {
    pub number: String,
    pub name: Option<String>,
    pub private: bool,
}

impl Call {
    /// The caller of leg A (`source`, once routed).
    pub(super) fn caller_id(&self, source: Option<&Source>) -> CallerId {
        let req = self.first_invite();
        let cfg = self.switch.config();
        let private = req
            .headers
            .get_all(&Name::Privacy)
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .any(|p| {
                ["id", "user", "header"]
                    .iter()
                    .any(|x| p.eq_ignore_ascii_case(x))
            });
        let inbound = match source {
            Some(Source::Trunk(t)) => cfg.trunk(t).and_then(|t| t.inbound.as_ref()),
            _ => None,
        };
        let trusted = inbound.is_some_and(|i| i.trust_identity);
        let asserted = trusted
            .then(|| {
                sip::parse_name_addrs(
                    req.headers.get_all(&Name::PAssertedIdentity),
                    "P-Asserted-Identity",
                )
                .ok()
                .and_then(|v| v.into_iter().find(|a| a.uri.sip().is_some()))
            })
            .flatten();
        let shown = asserted.or_else(|| req.from().ok());
        let number = shown
            .as_ref()
            .and_then(|f| {
                f.uri
                    .sip()
                    .and_then(|u| u.user_decoded().map(|u| u.into_owned()))
            })
            .unwrap_or_else(|| "anonymous".into());
        let number = if inbound.is_some_and(|i| i.normalize) {
            cfg.numbering.to_e164(&number)
        } else {
            number
        };
        CallerId {
            number,
            name: shown.and_then(|f| f.display),
            private,
        }
    }

    /// The From (and Privacy / P-Asserted-Identity) of an INVITE the switch
    /// sends to `dest` for `source`.
    pub(super) fn identity_headers(
        &self,
        dest: &Dest,
        source: &Source,
        from_host: &Host,
        queue: Option<&str>,
    ) -> Vec<(Name, String)> {
        let cfg = self.switch.config();
        let out = dest
            .trunk
            .as_deref()
            .and_then(|t| cfg.trunk(t))
            .and_then(|t| t.outbound.as_ref());
        let id = self.caller_id(Some(source));
        let (number, name) = match source {
            Source::User(u) => {
                let user = cfg.user(u);
                let number = match out {
                    Some(o) => user
                        .and_then(|u| u.caller_id.clone())
                        .or_else(|| o.caller_id.clone())
                        .unwrap_or_else(|| u.clone()),
                    None => u.clone(),
                };
                (number, user.and_then(|u| u.display_name.clone()))
            }
            Source::Trunk(_) => (id.number.clone(), id.name.clone()),
        };
        // The carrier's number format (a local user's name stays a name).
        let number = match out {
            Some(o) => cfg.numbering.format(&number, o.number_format),
            None => number,
        };
        let real = SipUri::new(Some(&number), from_host.clone(), None);
        let mut from = if id.private {
            let mut f = NameAddr::new(Uri::Sip(SipUri::new(
                Some("anonymous"),
                Host::Domain("anonymous.invalid".into()),
                None,
            )));
            f.display = Some("Anonymous".into());
            f
        } else {
            let mut f = NameAddr::new(Uri::Sip(real.clone()));
            f.display = name.clone();
            f
        };
        // An agent's phone shows the queue with the caller.
        if let Some(q) = queue {
            let who = if id.private {
                "anonymous".to_owned()
            } else {
                name.unwrap_or_else(|| number.clone())
            };
            from.display = Some(format!("{q}: {who}"));
        }
        from.set_param("tag", Some(&new_tag()));
        let mut h = vec![(Name::From, from.to_string())];
        if id.private && out.is_some() {
            h.push((Name::Privacy, "id".into()));
        }
        if out.is_some_and(|o| o.assert_identity) {
            h.push((Name::PAssertedIdentity, format!("<{real}>")));
        }
        h
    }
}
