//! Header names (with RFC 3261 §7.3.3 compact forms) and the ordered header
//! list of a message.

use std::fmt;

macro_rules! names {
    ($( $var:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are matched case-insensitively,
        /// including compact forms; others keep their spelling.
        #[derive(Debug, Clone)]
        pub enum Name {
            $( #[doc = $canon] $var, )*
            /// Any other header.
            Other(String),
        }

        impl Name {
            /// Maps a received name (any case, compact or long) to a `Name`.
            pub fn parse(s: &str) -> Name {
                $(
                    if s.eq_ignore_ascii_case($canon) $(|| s.eq_ignore_ascii_case($compact))? {
                        return Name::$var;
                    }
                )*
                Name::Other(s.to_owned())
            }

            /// The canonical (long) form.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Name::$var => $canon, )*
                    Name::Other(s) => s,
                }
            }
        }
    };
}

names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", "m";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", "k";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    UserAgent => "User-Agent";
    Server => "Server";
    Subject => "Subject", "s";
    Reason => "Reason";
    Date => "Date";
    Timestamp => "Timestamp";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    SessionExpires => "Session-Expires", "x";
    PAssertedIdentity => "P-Asserted-Identity";
    Privacy => "Privacy";
    RSeq => "RSeq";
    RAck => "RAck";
    MinSe => "Min-SE";
    Replaces => "Replaces";
    SubscriptionState => "Subscription-State";
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        match (self, other) {
            (Name::Other(a), Name::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}
impl Eq for Name {}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field: a name and its (unfolded) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: Name,
    /// The value with leading/trailing LWS removed and folding replaced by SP.
    pub value: String,
}

/// The ordered header fields of a message. Order is kept, because Via,
/// Route and Record-Route order matters (RFC 3261 §7.3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// All fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a field.
    pub fn push(&mut self, name: Name, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a field before all others (e.g. a new top Via).
    pub fn push_front(&mut self, name: Name, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// The first value of `name`.
    pub fn get(&self, name: &Name) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// All values of `name` in order (one per field line, not comma-split).
    pub fn get_all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// How many field lines carry `name`.
    pub fn count(&self, name: &Name) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// Replaces all fields named `name` with one field (appended if absent).
    pub fn set(&mut self, name: Name, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = 0;
                self.0.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &Name) {
        self.0.retain(|h| &h.name != name);
    }

    /// Removes the first value of a possibly comma-separated header (the
    /// topmost Via or Route), keeping the rest of that line.
    pub fn remove_first_value(&mut self, name: &Name) -> Option<String> {
        let i = self.0.iter().position(|h| &h.name == name)?;
        let values = crate::lex::split_commas(&self.0[i].value)?;
        let first = values.first()?.to_string();
        if values.len() == 1 {
            self.0.remove(i);
        } else {
            self.0[i].value = values[1..].join(", ");
        }
        Some(first)
    }

    /// Copies every field named `name` from `other`, in order.
    pub fn copy_from(&mut self, other: &Headers, name: &Name) {
        for h in other.0.iter().filter(|h| &h.name == name) {
            self.0.push(h.clone());
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
