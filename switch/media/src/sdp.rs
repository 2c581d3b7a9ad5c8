//! SDP (RFC 4566) for one audio stream, and the RFC 3264 offer/answer model.
//!
//! Parsing goes through `sdp_types`; the bodies we send are written here,
//! line by line with CRLF, so they stay small and predictable:
//!
//! ```text
//! v=0
//! o=- <session id> <version> IN IP4 <addr>
//! s=-
//! c=IN IP4 <addr>
//! t=0 0
//! m=audio <port> RTP/AVP <formats>
//! a=rtpmap:... / a=fmtp:... / a=ptime:20 / a=sendrecv
//! ```
//!
//! An answer names one audio codec (plus telephone-event), so neither side
//! can switch codecs mid-stream (RFC 3264 §6.1 allows more; the relay would
//! have to follow every switch).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use sdp_types::{Media, Session};

use crate::codec::Codec;

/// Why a session description cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Not RFC 4566 syntax (the `sdp_types` parser's message).
    #[error("SDP parse error: {0}")]
    Parse(String),
    /// No `m=audio` with a non-zero port over RTP/AVP (or RTP/AVPF).
    #[error("no usable audio stream in SDP")]
    NoAudio,
    /// No codec in common (answer 488 Not Acceptable Here).
    #[error("no codec in common")]
    NoCommonCodec,
    /// The audio stream has no `c=`, or one that is not a unicast IP address.
    #[error("missing or unusable c= line for the audio stream")]
    BadConnection,
}

impl SdpError {
    /// Stable label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SdpError::Parse(_) => "parse",
            SdpError::NoAudio => "no_audio",
            SdpError::NoCommonCodec => "no_common_codec",
            SdpError::BadConnection => "bad_connection",
        }
    }
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1), from the point of
/// view of the side that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The same stream seen from the other side (RFC 3264 §6.1).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the side that wrote it sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote it receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Sends only if both do, receives only if both do.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// A payload type of the `m=` line bound to a codec we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    /// RTP payload type.
    pub pt: u8,
    /// Codec (from `a=rtpmap`, else the RFC 3551 static payload type).
    pub codec: Codec,
}

/// The audio stream of a session description (the first `m=audio` with a
/// non-zero port, RFC 3264 §5.1).
#[derive(Clone, Debug)]
pub struct Audio {
    /// Connection address: the media-level `c=`, else the session-level one (RFC 4566 §5.7).
    pub addr: IpAddr,
    /// RTP port.
    pub port: u16,
    /// RTCP address: `a=rtcp` (RFC 3605 §2.1), else port + 1 (RFC 3550 §11).
    pub rtcp: SocketAddr,
    /// `a=rtcp-mux` present (RFC 5761 §5.1.1).
    pub rtcp_mux: bool,
    /// Formats of known codecs, in the `m=` line's (preference) order.
    pub formats: Vec<Format>,
    /// `telephone-event` (RFC 4733 §7.1.1) at the clock rate of the first format, or 8000.
    pub telephone_event: Option<u8>,
    /// Every `telephone-event` payload type with its clock rate, in `m=` order.
    pub telephone_events: Vec<(u8, u32)>,
    /// `a=ptime` in milliseconds (RFC 4566 §6).
    pub ptime: Option<u32>,
    /// Direction at media level, else session level, else sendrecv (RFC 3264
    /// §5.1); a zero `c=` address makes a sending direction send-only and a
    /// receiving-only one inactive (see `hold_by_zero_addr`).
    pub direction: Direction,
    /// `c=` was 0.0.0.0 (or `::`): the RFC 2543 hold, RFC 3264 §8.4.
    pub hold_by_zero_addr: bool,
}

impl Audio {
    /// The `telephone-event` payload type at `clock_rate` (RFC 4733 §2.1: the
    /// same rate as the audio codec).
    pub fn telephone_event_at(&self, clock_rate: u32) -> Option<u8> {
        self.telephone_events
            .iter()
            .find(|(_, rate)| *rate == clock_rate)
            .map(|(pt, _)| *pt)
    }

    /// The RTP address.
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// A parsed session description and its audio stream.
#[derive(Clone, Debug)]
pub struct Sdp {
    /// Everything `sdp_types` parsed.
    pub session: Session,
    /// The audio stream.
    pub audio: Audio,
    /// Index of the audio stream among the `m=` lines.
    pub audio_index: usize,
    /// Number of `m=` lines (an answer has the same number, RFC 3264 §6).
    pub media_count: usize,
}

/// Parses a session description (RFC 4566) and finds its audio stream.
pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
    let session = Session::parse(body).map_err(|e| SdpError::Parse(e.to_string()))?;
    let (audio_index, media) = session
        .medias
        .iter()
        .enumerate()
        .find(|(_, m)| m.media.eq_ignore_ascii_case("audio") && m.port != 0 && rtp_avp(&m.proto))
        .ok_or(SdpError::NoAudio)?;
    let audio = audio(&session, media)?;
    let media_count = session.medias.len();
    Ok(Sdp {
        session,
        audio,
        audio_index,
        media_count,
    })
}

/// Plain RTP profiles we can answer (RFC 3551, RFC 4585), no SRTP.
fn rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn audio(session: &Session, media: &Media) -> Result<Audio, SdpError> {
    let connection = media
        .connections
        .first()
        .or(session.connection.as_ref())
        .ok_or(SdpError::BadConnection)?;
    let addr = connection
        .try_address()
        .map_err(|_| SdpError::BadConnection)?
        .ip;
    if addr.is_multicast() {
        return Err(SdpError::BadConnection);
    }

    let mut formats = Vec::new();
    let mut telephone_events = Vec::new();
    for pt in media
        .fmt
        .split_ascii_whitespace()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|pt| *pt < 128)
    {
        let rtpmap = media
            .attributes_typed::<sdp_types::RtpMap>()
            .filter_map(Result::ok)
            .find(|m| m.payload_type == pt);
        match rtpmap {
            Some(m) if m.encoding_name.eq_ignore_ascii_case("telephone-event") => {
                telephone_events.push((pt, m.clock_rate));
            }
            Some(m) => {
                if let Some(codec) = Codec::from_rtpmap(&m.encoding_name, m.clock_rate) {
                    formats.push(Format { pt, codec });
                }
            }
            None if pt < 96 => {
                if let Some(codec) = Codec::from_static_pt(pt) {
                    formats.push(Format { pt, codec });
                }
            }
            None => {}
        }
    }
    let first_rate = formats.first().map_or(8000, |f| f.codec.clock_rate());
    let telephone_event = telephone_events
        .iter()
        .find(|(_, rate)| *rate == first_rate)
        .map(|(pt, _)| *pt);

    let rtcp = match media.get_first_attribute_typed::<sdp_types::Rtcp>() {
        Some(Ok(r)) => {
            let ip = r
                .connection_address
                .and_then(|a| a.parse::<IpAddr>().ok())
                .unwrap_or(addr);
            SocketAddr::new(ip, r.port)
        }
        _ => SocketAddr::new(addr, media.port.checked_add(1).unwrap_or(media.port)),
    };
    let ptime = media
        .get_first_attribute_value("ptime")
        .flatten()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|p| (1.0..=1000.0).contains(p))
        .map(|p| p.round() as u32);

    let direction = direction_of(&media.attributes)
        .or_else(|| direction_of(&session.attributes))
        .unwrap_or(Direction::SendRecv);
    let hold_by_zero_addr = addr.is_unspecified();
    let direction = if hold_by_zero_addr {
        direction.intersect(Direction::SendOnly)
    } else {
        direction
    };

    Ok(Audio {
        addr,
        port: media.port,
        rtcp,
        rtcp_mux: media.has_attribute("rtcp-mux"),
        formats,
        telephone_event,
        telephone_events,
        ptime,
        direction,
        hold_by_zero_addr,
    })
}

/// The last direction attribute among `attributes` (RFC 4566 §6 allows one).
fn direction_of(attributes: &[sdp_types::Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|a| a.value.is_none())
        .rev()
        .find_map(|a| Direction::from_attribute(&a.attribute))
}

/// What the switch offers/answers with on one leg.
#[derive(Clone, Debug)]
pub struct Local {
    /// Our media address (`c=`, `o=`).
    pub addr: IpAddr,
    /// Our RTP port (RTCP on port + 1, or on this port with rtcp-mux).
    pub port: u16,
    /// Codecs we take, in preference order.
    pub codecs: Vec<Codec>,
    /// Whether we offer/accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Packetization time we want to receive, ms (RFC 4566 §6 `a=ptime`), normally 20.
    pub ptime: u32,
    /// The direction we want (sendrecv, or sendonly/inactive to hold).
    pub direction: Direction,
}

/// Keeps `o=` (session id, version) for one leg: the version increments on
/// every changed description (RFC 3264 §8; RFC 4566 §5.2).
#[derive(Clone, Debug)]
pub struct Origin {
    session_id: u64,
    version: u64,
    /// The last body written, from `s=` on.
    last: Option<Vec<u8>>,
}

impl Origin {
    /// An origin for a new session; the first description gets version 1.
    pub fn new(session_id: u64) -> Self {
        Origin {
            session_id,
            version: 1,
            last: None,
        }
    }

    /// The session id of `o=`.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description written.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version for a description whose lines after `o=` are `rest`.
    fn stamp(&mut self, rest: &[u8]) -> u64 {
        match &self.last {
            Some(last) if last.as_slice() == rest => {}
            Some(_) => {
                self.version = self.version.wrapping_add(1);
                self.last = Some(rest.to_vec());
            }
            None => self.last = Some(rest.to_vec()),
        }
        self.version
    }
}

/// The result of an offer/answer exchange on one leg: what we send and what we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec we send and expect.
    pub codec: Codec,
    /// Its payload type (the one the far end expects to receive).
    pub pt: u8,
    /// telephone-event payload type, if both sides do RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// Where we send RTP.
    pub remote: SocketAddr,
    /// Where we send RTCP (`remote` with rtcp-mux).
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share the port (RFC 5761).
    pub rtcp_mux: bool,
    /// Our direction.
    pub direction: Direction,
    /// Packetization time the far end asked for (its `a=ptime`), else ours, ms.
    pub ptime: u32,
}

/// One `m=` line of a body we write.
enum MediaOut<'a> {
    /// Our audio stream.
    Audio {
        proto: &'a str,
        formats: Vec<FormatLine>,
        rtcp_mux: bool,
    },
    /// A refused stream, RFC 3264 §6: port 0, the offer's media, proto and formats.
    Refused {
        media: &'a str,
        proto: &'a str,
        fmt: &'a str,
    },
}

/// RFC 3264 §6.1: answers `offer`: picks the first offered format among
/// `local.codecs` (offerer's order; if `prefer_local` is true, our order), keeps
/// the offerer's payload type numbers, telephone-event if both, direction
/// reversed and intersected with `local.direction`, other m-lines refused with
/// port 0 in the same order, ptime. Returns the body and what was agreed.
pub fn answer(
    offer: &Sdp,
    local: &Local,
    origin: &mut Origin,
    prefer_local: bool,
) -> Result<(Vec<u8>, Negotiated), SdpError> {
    let audio = &offer.audio;
    let chosen = if prefer_local {
        local
            .codecs
            .iter()
            .find_map(|c| audio.formats.iter().find(|f| f.codec == *c))
    } else {
        audio
            .formats
            .iter()
            .find(|f| local.codecs.contains(&f.codec))
    }
    .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = telephone_event_for(audio, local, chosen.codec);

    let mut formats = vec![codec_line(chosen.pt, chosen.codec)];
    if let Some(pt) = dtmf_pt {
        formats.push(dtmf_line(pt, chosen.codec.clock_rate()));
    }
    let direction = audio.direction.reverse().intersect(local.direction);
    let medias: Vec<MediaOut<'_>> = offer
        .session
        .medias
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == offer.audio_index {
                MediaOut::Audio {
                    proto: &m.proto,
                    formats: std::mem::take(&mut formats),
                    rtcp_mux: audio.rtcp_mux,
                }
            } else {
                MediaOut::Refused {
                    media: &m.media,
                    proto: &m.proto,
                    fmt: &m.fmt,
                }
            }
        })
        .collect();
    let body = write_body(origin, local, direction, &medias);

    let remote = audio.rtp_addr();
    let negotiated = Negotiated {
        codec: chosen.codec,
        pt: chosen.pt,
        dtmf_pt,
        remote,
        remote_rtcp: if audio.rtcp_mux { remote } else { audio.rtcp },
        rtcp_mux: audio.rtcp_mux,
        direction,
        ptime: audio.ptime.unwrap_or(local.ptime),
    };
    Ok((body, negotiated))
}

/// RFC 3264 §5: an offer of `local.codecs` (static payload types where they
/// exist, dynamic from 96 up for Opus, telephone-event at 101 for 8000 Hz and
/// on the next free dynamic number for 48000 Hz if Opus is offered).
pub fn offer(local: &Local, origin: &mut Origin) -> Vec<u8> {
    let (codecs, dtmf) = offer_payload_types(local);
    let mut formats: Vec<_> = codecs.iter().map(|(pt, c)| codec_line(*pt, *c)).collect();
    formats.extend(dtmf.iter().map(|(pt, rate)| dtmf_line(*pt, *rate)));
    write_body(
        origin,
        local,
        local.direction,
        &[MediaOut::Audio {
            proto: "RTP/AVP",
            formats,
            rtcp_mux: false,
        }],
    )
}

/// Payload types of our offer: (pt, codec) and telephone-event (pt, clock rate).
type OfferPayloadTypes = (Vec<(u8, Codec)>, Vec<(u8, u32)>);

/// RFC 3264 §5.1 payload types of our offer.
fn offer_payload_types(local: &Local) -> OfferPayloadTypes {
    let mut next_dynamic = 96u8;
    let mut codecs = Vec::new();
    for &c in &local.codecs {
        if codecs.iter().any(|(_, have)| *have == c) {
            continue;
        }
        let pt = c.static_pt().unwrap_or_else(|| {
            next_dynamic += 1;
            next_dynamic - 1
        });
        codecs.push((pt, c));
    }
    let mut dtmf = Vec::new();
    if local.telephone_event {
        let mut rates: Vec<u32> = vec![8000];
        if codecs.iter().any(|(_, c)| c.clock_rate() == 48000) {
            rates.push(48000);
        }
        for rate in rates {
            let pt = if rate == 8000 {
                101
            } else {
                next_dynamic += 1;
                next_dynamic - 1
            };
            dtmf.push((pt, rate));
        }
    }
    (codecs, dtmf)
}

/// The telephone-event payload type both sides use with `codec`, if any.
fn telephone_event_for(audio: &Audio, local: &Local, codec: Codec) -> Option<u8> {
    local
        .telephone_event
        .then(|| audio.telephone_event_at(codec.clock_rate()))
        .flatten()
}

/// RFC 3264 §6 as the offerer: what the answer to our `local` offer agreed
/// (error if it names nothing we offered). We send the first answered codec
/// we offered (RFC 3264 §7), with the answer's payload type.
pub fn accept_answer(answer: &Sdp, local: &Local) -> Result<Negotiated, SdpError> {
    let audio = &answer.audio;
    let chosen = audio
        .formats
        .iter()
        .find(|f| local.codecs.contains(&f.codec))
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = telephone_event_for(audio, local, chosen.codec);
    let remote = audio.rtp_addr();
    // We did not offer rtcp-mux, so an answer cannot turn it on (RFC 5761 §5.1.1).
    Ok(Negotiated {
        codec: chosen.codec,
        pt: chosen.pt,
        dtmf_pt,
        remote,
        remote_rtcp: audio.rtcp,
        rtcp_mux: false,
        direction: audio.direction.reverse().intersect(local.direction),
        ptime: audio.ptime.unwrap_or(local.ptime),
    })
}

/// A payload type as written: `a=rtpmap` (RFC 4566 §6) and `a=fmtp`.
struct FormatLine {
    pt: u8,
    name: &'static str,
    clock_rate: u32,
    channels: Option<u8>,
    fmtp: Option<&'static str>,
}

fn codec_line(pt: u8, codec: Codec) -> FormatLine {
    // RFC 7587 §6.1: in-band FEC helps on lossy links and costs nothing to ask for.
    let fmtp = (codec == Codec::Opus).then_some("useinbandfec=1");
    FormatLine {
        pt,
        name: codec.name(),
        clock_rate: codec.clock_rate(),
        channels: codec.channels(),
        fmtp,
    }
}

/// RFC 4733 §7.1.1: events 0-15 (DTMF) and 16 (flash).
fn dtmf_line(pt: u8, clock_rate: u32) -> FormatLine {
    FormatLine {
        pt,
        name: "telephone-event",
        clock_rate,
        channels: None,
        fmtp: Some("0-16"),
    }
}

/// Writes a whole body: `v=`, `o=` (versioned by `origin`), `s=`, `c=`, `t=`, the media.
fn write_body(
    origin: &mut Origin,
    local: &Local,
    direction: Direction,
    medias: &[MediaOut<'_>],
) -> Vec<u8> {
    let ip = match local.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut rest = String::new();
    let _ = write!(rest, "s=-\r\nc=IN {ip} {}\r\nt=0 0\r\n", local.addr);
    for m in medias {
        match m {
            MediaOut::Audio {
                proto,
                formats,
                rtcp_mux,
            } => {
                let _ = write!(rest, "m=audio {} {proto}", local.port);
                for f in formats {
                    let _ = write!(rest, " {}", f.pt);
                }
                rest.push_str("\r\n");
                for f in formats {
                    let _ = write!(rest, "a=rtpmap:{} {}/{}", f.pt, f.name, f.clock_rate);
                    if let Some(ch) = f.channels {
                        let _ = write!(rest, "/{ch}");
                    }
                    rest.push_str("\r\n");
                    if let Some(fmtp) = f.fmtp {
                        let _ = write!(rest, "a=fmtp:{} {fmtp}\r\n", f.pt);
                    }
                }
                let _ = write!(rest, "a=ptime:{}\r\n", local.ptime);
                if *rtcp_mux {
                    rest.push_str("a=rtcp-mux\r\n");
                }
                let _ = write!(rest, "a={}\r\n", direction.as_str());
            }
            MediaOut::Refused { media, proto, fmt } => {
                let _ = write!(rest, "m={media} 0 {proto} {fmt}\r\n");
            }
        }
    }
    let version = origin.stamp(rest.as_bytes());
    let mut body = format!(
        "v=0\r\no=- {} {version} IN {ip} {}\r\n",
        origin.session_id, local.addr
    )
    .into_bytes();
    body.extend_from_slice(rest.as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// `sipp -sd uac`: PCMU only.
    const SIPP_UAC: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    /// `sipp -sd uac_pcap`: PCMA and telephone-event.
    const SIPP_UAC_PCAP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";
    /// baresip: Opus, G.722, G.711, telephone-event at both rates.
    const BARESIP: &str = "v=0\r\no=- 1730498466 1495326929 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP 111 9 0 8 101 102\r\nb=AS:128\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 stereo=1;sprop-stereo=1\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-15\r\na=rtpmap:102 telephone-event/8000\r\na=fmtp:102 0-15\r\na=ptime:20\r\na=sendrecv\r\na=rtcp-rsize\r\n";

    fn local() -> Local {
        Local {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 20000,
            codecs: Codec::ALL.to_vec(),
            telephone_event: true,
            ptime: 20,
            direction: Direction::SendRecv,
        }
    }

    fn text(body: &[u8]) -> &str {
        std::str::from_utf8(body).unwrap()
    }

    /// Answers `offer` and checks the answer parses with the same m= count.
    fn answer_ok(offer: &str, local: &Local, prefer_local: bool) -> (String, Negotiated, Sdp) {
        let offer = parse(offer.as_bytes()).unwrap();
        let (body, n) = answer(&offer, local, &mut Origin::new(42), prefer_local).unwrap();
        let back = parse(&body).unwrap();
        assert_eq!(back.media_count, offer.media_count);
        assert_eq!(back.audio_index, offer.audio_index);
        (String::from_utf8(body).unwrap(), n, back)
    }

    #[test]
    fn answers_sipp_uac() {
        let offer = parse(SIPP_UAC.as_bytes()).unwrap();
        assert_eq!(
            offer.audio.formats,
            vec![Format {
                pt: 0,
                codec: Codec::Pcmu
            }]
        );
        assert_eq!(offer.audio.rtcp, "127.0.0.1:6001".parse().unwrap());
        let (body, n, back) = answer_ok(SIPP_UAC, &local(), false);
        assert_eq!(
            body,
            "v=0\r\no=- 42 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n\
             a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        assert_eq!(
            n,
            Negotiated {
                codec: Codec::Pcmu,
                pt: 0,
                dtmf_pt: None,
                remote: "127.0.0.1:6000".parse().unwrap(),
                remote_rtcp: "127.0.0.1:6001".parse().unwrap(),
                rtcp_mux: false,
                direction: Direction::SendRecv,
                ptime: 20,
            }
        );
        assert_eq!(back.audio.direction, Direction::SendRecv);
    }

    #[test]
    fn answers_sipp_uac_pcap_with_dtmf() {
        let (body, n, back) = answer_ok(SIPP_UAC_PCAP, &local(), false);
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
        assert!(body.contains("m=audio 20000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert_eq!(back.audio.telephone_event, Some(101));
        // Without telephone-event on our side.
        let mut l = local();
        l.telephone_event = false;
        let (body, n, _) = answer_ok(SIPP_UAC_PCAP, &l, false);
        assert_eq!(n.dtmf_pt, None);
        assert!(!body.contains("telephone-event"));
    }

    #[test]
    fn answers_baresip_in_either_order() {
        let offer = parse(BARESIP.as_bytes()).unwrap();
        let pts: Vec<_> = offer
            .audio
            .formats
            .iter()
            .map(|f| (f.pt, f.codec))
            .collect();
        assert_eq!(
            pts,
            [
                (111, Codec::Opus),
                (9, Codec::G722),
                (0, Codec::Pcmu),
                (8, Codec::Pcma)
            ]
        );
        assert_eq!(offer.audio.telephone_event, Some(101));
        assert_eq!(offer.audio.telephone_events, [(101, 48000), (102, 8000)]);
        assert_eq!(offer.audio.ptime, Some(20));

        let (body, n, _) = answer_ok(BARESIP, &local(), false);
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Opus, 111, Some(101)));
        assert!(body.contains("m=audio 20000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:101 telephone-event/48000\r\n"));

        // Offerer's order wins unless prefer_local.
        let mut l = local();
        l.codecs = vec![Codec::Pcma, Codec::G722];
        let (_, n, _) = answer_ok(BARESIP, &l, false);
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::G722, 9, Some(102)));
        let (body, n, _) = answer_ok(BARESIP, &l, true);
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(102)));
        assert!(body.contains("m=audio 20000 RTP/AVP 8 102\r\n"));
    }

    #[test]
    fn no_common_codec() {
        let g729 = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let offer = parse(g729.as_bytes()).unwrap();
        assert!(offer.audio.formats.is_empty());
        let e = answer(&offer, &local(), &mut Origin::new(1), false).unwrap_err();
        assert!(matches!(e, SdpError::NoCommonCodec));
        assert_eq!(e.as_str(), "no_common_codec");
        let mut l = local();
        l.codecs = vec![Codec::Opus];
        let offer = parse(SIPP_UAC.as_bytes()).unwrap();
        assert!(matches!(
            answer(&offer, &l, &mut Origin::new(1), true),
            Err(SdpError::NoCommonCodec)
        ));
        // Dynamic payload type without rtpmap: unknown.
        let bare = SIPP_UAC.replace("RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", "RTP/AVP 96\r\n");
        assert!(parse(bare.as_bytes()).unwrap().audio.formats.is_empty());
        // Static payload type without rtpmap: known (RFC 3551).
        let bare = SIPP_UAC.replace("RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", "RTP/AVP 9\r\n");
        assert_eq!(
            parse(bare.as_bytes()).unwrap().audio.formats,
            [Format {
                pt: 9,
                codec: Codec::G722
            }]
        );
    }

    #[test]
    fn hold_variants() {
        let with = |dir: &str| {
            SIPP_UAC_PCAP.replace(
                "a=fmtp:101 0-11,16\r\n",
                &format!("a=fmtp:101 0-11,16\r\n{dir}"),
            )
        };
        for (attr, theirs, ours) in [
            ("a=sendonly\r\n", Direction::SendOnly, Direction::RecvOnly),
            ("a=recvonly\r\n", Direction::RecvOnly, Direction::SendOnly),
            ("a=inactive\r\n", Direction::Inactive, Direction::Inactive),
            ("a=sendrecv\r\n", Direction::SendRecv, Direction::SendRecv),
            ("", Direction::SendRecv, Direction::SendRecv),
        ] {
            let (body, n, _) = answer_ok(&with(attr), &local(), false);
            assert_eq!(
                parse(with(attr).as_bytes()).unwrap().audio.direction,
                theirs,
                "{attr}"
            );
            assert_eq!(n.direction, ours, "{attr}");
            assert!(body.contains(&format!("a={}\r\n", ours.as_str())));
        }
        // RFC 2543 hold: c=0.0.0.0.
        let zero = SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let offer = parse(zero.as_bytes()).unwrap();
        assert!(offer.audio.hold_by_zero_addr);
        assert_eq!(offer.audio.direction, Direction::SendOnly);
        let (_, n, _) = answer_ok(&zero, &local(), false);
        assert_eq!(n.direction, Direction::RecvOnly);
        let zero_recvonly = format!("{zero}a=recvonly\r\n");
        assert_eq!(
            parse(zero_recvonly.as_bytes()).unwrap().audio.direction,
            Direction::Inactive
        );
        // We hold: sendonly meets their sendrecv, and their sendonly.
        let mut l = local();
        l.direction = Direction::SendOnly;
        assert_eq!(
            answer_ok(SIPP_UAC, &l, false).1.direction,
            Direction::SendOnly
        );
        assert_eq!(
            answer_ok(&with("a=sendonly\r\n"), &l, false).1.direction,
            Direction::Inactive
        );
    }

    #[test]
    fn session_and_media_level() {
        let body =
            "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\na=sendonly\r\n\
                    m=audio 4000 RTP/AVP 0\r\nc=IN IP4 2.2.2.2\r\n";
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.audio.addr, IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2)));
        assert_eq!(sdp.audio.direction, Direction::SendOnly);
        let sdp = parse(format!("{body}a=recvonly\r\n").as_bytes()).unwrap();
        assert_eq!(sdp.audio.direction, Direction::RecvOnly);
        // Session-level c= only.
        let sdp = parse(SIPP_UAC.as_bytes()).unwrap();
        assert_eq!(sdp.audio.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        // No c= at all; multicast; not an address.
        let none = SIPP_UAC.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert!(matches!(
            parse(none.as_bytes()),
            Err(SdpError::BadConnection)
        ));
        let mcast = SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 224.2.1.1/127");
        assert!(matches!(
            parse(mcast.as_bytes()),
            Err(SdpError::BadConnection)
        ));
        let name = SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 host.example.com");
        assert!(matches!(
            parse(name.as_bytes()),
            Err(SdpError::BadConnection)
        ));
    }

    #[test]
    fn ipv6() {
        let v6 = SIPP_UAC.replace("IN IP4 127.0.0.1", "IN IP6 2001:db8::1");
        let sdp = parse(v6.as_bytes()).unwrap();
        assert_eq!(sdp.audio.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(sdp.audio.rtcp, "[2001:db8::1]:6001".parse().unwrap());
        let mut l = local();
        l.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        let (body, n, back) = answer_ok(&v6, &l, false);
        assert!(body.contains("o=- 42 1 IN IP6 2001:db8::2\r\n"));
        assert!(body.contains("c=IN IP6 2001:db8::2\r\n"));
        assert_eq!(back.audio.addr, l.addr);
        assert_eq!(n.remote, "[2001:db8::1]:6000".parse().unwrap());
        // "::" is the IPv6 form of the zero-address hold.
        let zero = SIPP_UAC.replace("IN IP4 127.0.0.1", "IN IP6 ::");
        assert!(parse(zero.as_bytes()).unwrap().audio.hold_by_zero_addr);
    }

    #[test]
    fn rtcp_attribute_and_mux() {
        let with = |a: &str| format!("{SIPP_UAC}{a}");
        let sdp = parse(with("a=rtcp:53020 IN IP4 126.16.64.4\r\n").as_bytes()).unwrap();
        assert_eq!(sdp.audio.rtcp, "126.16.64.4:53020".parse().unwrap());
        let sdp = parse(with("a=rtcp:53020\r\n").as_bytes()).unwrap();
        assert_eq!(sdp.audio.rtcp, "127.0.0.1:53020".parse().unwrap());
        let (_, n, _) = answer_ok(&with("a=rtcp:53020\r\n"), &local(), false);
        assert_eq!(n.remote_rtcp, "127.0.0.1:53020".parse().unwrap());
        // rtcp-mux offered: accepted, RTCP goes to the RTP address.
        let (body, n, back) = answer_ok(&with("a=rtcp-mux\r\n"), &local(), false);
        assert!(n.rtcp_mux && back.audio.rtcp_mux);
        assert_eq!(n.remote_rtcp, n.remote);
        assert!(body.contains("a=rtcp-mux\r\n"));
    }

    #[test]
    fn refuses_other_media_lines() {
        let body = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                    m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                    m=audio 0 RTP/AVP 0\r\n\
                    m=audio 4000 RTP/SAVP 0\r\n\
                    m=audio 4002 RTP/AVP 8 0\r\n\
                    m=audio 4004 RTP/AVP 0\r\n";
        let offer = parse(body.as_bytes()).unwrap();
        assert_eq!(
            (offer.audio_index, offer.media_count, offer.audio.port),
            (3, 5, 4002)
        );
        let (answer, n, _) = answer_ok(body, &local(), false);
        assert_eq!((n.codec, n.pt), (Codec::Pcma, 8));
        let m: Vec<_> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            [
                "m=video 0 RTP/AVP 96",
                "m=audio 0 RTP/AVP 0",
                "m=audio 0 RTP/SAVP 0",
                "m=audio 20000 RTP/AVP 8",
                "m=audio 0 RTP/AVP 0"
            ]
        );
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(parse(b"not sdp"), Err(SdpError::Parse(_))));
        assert!(matches!(parse(b""), Err(SdpError::Parse(_))));
        let video = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n";
        assert!(matches!(parse(video.as_bytes()), Err(SdpError::NoAudio)));
        let srtp = SIPP_UAC.replace("RTP/AVP", "RTP/SAVP");
        assert!(matches!(parse(srtp.as_bytes()), Err(SdpError::NoAudio)));
        let zero_port = SIPP_UAC.replace("m=audio 6000", "m=audio 0");
        assert!(matches!(
            parse(zero_port.as_bytes()),
            Err(SdpError::NoAudio)
        ));
        // LF-only line ends are tolerated.
        assert!(parse(SIPP_UAC.replace("\r\n", "\n").as_bytes()).is_ok());
    }

    #[test]
    fn offer_lists_codecs_and_dtmf() {
        let mut origin = Origin::new(7);
        let body = offer(&local(), &mut origin);
        assert_eq!(
            text(&body),
            "v=0\r\no=- 7 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 20000 RTP/AVP 96 9 0 8 101 97\r\n\
             a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
             a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-16\r\n\
             a=ptime:20\r\na=sendrecv\r\n"
        );
        let mut l = local();
        l.codecs = vec![Codec::Pcma, Codec::Pcmu];
        let body = offer(&l, &mut Origin::new(7));
        assert!(text(&body).contains("m=audio 20000 RTP/AVP 8 0 101\r\n"));
    }

    #[test]
    fn origin_version_counts_changes() {
        let mut origin = Origin::new(99);
        let mut l = local();
        let v = |b: &[u8]| parse(b).unwrap().session.origin.sess_version;
        assert_eq!(v(&offer(&l, &mut origin)), 1);
        assert_eq!(v(&offer(&l, &mut origin)), 1);
        l.direction = Direction::SendOnly;
        assert_eq!(v(&offer(&l, &mut origin)), 2);
        assert_eq!(origin.version(), 2);
        assert_eq!(origin.session_id(), 99);
        let o = parse(SIPP_UAC.as_bytes()).unwrap();
        let (body, _) = answer(&o, &l, &mut origin, false).unwrap();
        assert_eq!(v(&body), 3);
    }

    #[test]
    fn offer_answer_round_trip() {
        for codecs in [
            vec![Codec::Opus, Codec::Pcmu],
            vec![Codec::G722],
            vec![Codec::Pcma, Codec::Pcmu],
        ] {
            let ours = Local {
                codecs: codecs.clone(),
                ..local()
            };
            let theirs = Local {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                port: 30000,
                codecs: vec![Codec::Pcmu, Codec::G722, Codec::Opus, Codec::Pcma],
                telephone_event: true,
                ptime: 20,
                direction: Direction::SendRecv,
            };
            let o = parse(&offer(&ours, &mut Origin::new(1))).unwrap();
            let (a, their_view) = answer(&o, &theirs, &mut Origin::new(2), false).unwrap();
            let our_view = accept_answer(&parse(&a).unwrap(), &ours).unwrap();
            assert_eq!(our_view.codec, codecs[0]);
            assert_eq!(
                (our_view.codec, our_view.pt, our_view.dtmf_pt),
                (their_view.codec, their_view.pt, their_view.dtmf_pt)
            );
            assert!(our_view.dtmf_pt.is_some());
            assert_eq!(our_view.remote, "10.0.0.2:30000".parse().unwrap());
            assert_eq!(our_view.remote_rtcp, "10.0.0.2:30001".parse().unwrap());
            assert_eq!(their_view.remote, "10.0.0.1:20000".parse().unwrap());
            assert_eq!(our_view.direction, Direction::SendRecv);
        }
        // An answer naming nothing we offered.
        let ours = Local {
            codecs: vec![Codec::Opus],
            ..local()
        };
        assert!(matches!(
            accept_answer(&parse(SIPP_UAC.as_bytes()).unwrap(), &ours),
            Err(SdpError::NoCommonCodec)
        ));
        // A hold answer.
        let held = format!("{SIPP_UAC}a=recvonly\r\n");
        let n = accept_answer(&parse(held.as_bytes()).unwrap(), &local()).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
    }
}
