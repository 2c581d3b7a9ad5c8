//! RTCP (RFC 3550 §6): reading the peer's compound packets, writing our
//! sender/receiver reports with SDES CNAME, and the round-trip time.
//!
//! The compound structure is checked here (RFC 3550 A.2); the `rtcp` crate
//! reads and writes the SR, RR and SDES packets inside it. Other packet
//! types (APP, feedback, XR) are skipped unread.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ::rtcp::goodbye::Goodbye;
use ::rtcp::receiver_report::ReceiverReport;
use ::rtcp::reception_report::ReceptionReport;
use ::rtcp::sender_report::SenderReport;
use ::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use bytes::Bytes;
use webrtc_util::marshal::{Marshal, Unmarshal};

use crate::rtp::RxStats;

/// RFC 3550 §6.4.1 packet type of a sender report.
const PT_SR: u8 = 200;
/// RFC 3550 §6.4.2 packet type of a receiver report.
const PT_RR: u8 = 201;
/// RFC 3550 §6.5 packet type of a source description.
const PT_SDES: u8 = 202;
/// RFC 3550 §6.6 packet type of a goodbye.
const PT_BYE: u8 = 203;
/// Bytes of one report block (RFC 3550 §6.4.1).
const BLOCK_LEN: usize = 24;
/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why a datagram is not a valid compound RTCP packet (RFC 3550 A.2).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// Empty, or a header cut short.
    #[error("RTCP packet too short")]
    TooShort,
    /// A version field that is not 2.
    #[error("RTCP version is not 2")]
    BadVersion,
    /// A length field running past the end of the datagram.
    #[error("RTCP length runs past the end of the packet")]
    BadLength,
    /// The compound does not start with an SR or RR (RFC 3550 §6.1).
    #[error("RTCP compound does not start with SR or RR")]
    NotReport,
    /// Padding outside the last packet, or a padding count that does not fit.
    #[error("bad RTCP padding")]
    BadPadding,
    /// An SR or RR whose report count needs more bytes than it has, or that
    /// the `rtcp` crate cannot read.
    #[error("malformed RTCP report")]
    BadReport,
}

impl RtcpError {
    /// Stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RtcpError::TooShort => "too_short",
            RtcpError::BadVersion => "bad_version",
            RtcpError::BadLength => "bad_length",
            RtcpError::NotReport => "not_report",
            RtcpError::BadPadding => "bad_padding",
            RtcpError::BadReport => "bad_report",
        }
    }
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit fixed point, seconds since 1900).
    pub ntp: u64,
    /// RTP timestamp of the same instant.
    pub rtp_ts: u32,
    /// Sender's packet count.
    pub packets: u32,
    /// Sender's octet count (payload).
    pub octets: u32,
}

/// One report block (RFC 3550 §6.4.1): how a receiver sees a source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlockInfo {
    /// The source reported on (SSRC_n).
    pub ssrc: u32,
    /// Fraction lost since the previous report, 8-bit fixed point.
    pub fraction_lost: u8,
    /// Cumulative packets lost, 24-bit two's complement as sent.
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR from that source (0: none).
    pub lsr: u32,
    /// Delay since that SR, 1/65536 s.
    pub dlsr: u32,
}

/// What one received compound RTCP packet told us.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// SSRC of the sender of the first SR/RR.
    pub sender_ssrc: Option<u32>,
    /// Sender information, if the compound has an SR.
    pub sr: Option<SenderInfo>,
    /// The first report block.
    pub report: Option<ReportBlockInfo>,
    /// Every report block of every SR/RR, in order.
    pub reports: Vec<ReportBlockInfo>,
    /// The first CNAME (RFC 3550 §6.5.1), lossily decoded.
    pub cname: Option<String>,
    /// A BYE was present (RFC 3550 §6.6).
    pub bye: bool,
}

impl Received {
    /// The report block about `ssrc`.
    pub fn report_about(&self, ssrc: u32) -> Option<&ReportBlockInfo> {
        self.reports.iter().find(|r| r.ssrc == ssrc)
    }
}

/// Validates a compound RTCP packet (RFC 3550 A.2: version 2, first packet
/// an SR or RR without padding, lengths adding up to the datagram, padding
/// only in the last packet) and reads its SR/RR, SDES CNAME and BYE.
pub fn parse(packet: &[u8]) -> Result<Received, RtcpError> {
    if packet.len() < 4 {
        return Err(RtcpError::TooShort);
    }
    let mut received = Received::default();
    let mut offset = 0;
    while offset < packet.len() {
        let Some(header) = packet.get(offset..offset + 4) else {
            return Err(RtcpError::TooShort);
        };
        if header[0] >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let padded = header[0] & 0x20 != 0;
        let count = usize::from(header[0] & 0x1f);
        let pt = header[1];
        let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        let end = offset + len;
        if end > packet.len() {
            return Err(RtcpError::BadLength);
        }
        if offset == 0 {
            if pt != PT_SR && pt != PT_RR {
                return Err(RtcpError::NotReport);
            }
            if padded {
                return Err(RtcpError::BadPadding);
            }
        }
        let mut body = &packet[offset..end];
        if padded {
            let pad = usize::from(body[len - 1]);
            if end != packet.len() || pad == 0 || pad > len - 4 {
                return Err(RtcpError::BadPadding);
            }
            body = &body[..len - pad];
        }
        match pt {
            PT_SR => read_sr(body, count, &mut received)?,
            PT_RR => read_rr(body, count, &mut received)?,
            PT_SDES if received.cname.is_none() => received.cname = read_cname(body),
            PT_BYE => received.bye = true,
            _ => {}
        }
        offset = end;
    }
    received.report = received.reports.first().copied();
    Ok(received)
}

fn read_sr(body: &[u8], count: usize, r: &mut Received) -> Result<(), RtcpError> {
    if body.len() < 28 + count * BLOCK_LEN {
        return Err(RtcpError::BadReport);
    }
    let sr = SenderReport::unmarshal(&mut &body[..]).map_err(|_| RtcpError::BadReport)?;
    r.sender_ssrc.get_or_insert(sr.ssrc);
    r.sr.get_or_insert(SenderInfo {
        ntp: sr.ntp_time,
        rtp_ts: sr.rtp_time,
        packets: sr.packet_count,
        octets: sr.octet_count,
    });
    r.reports.extend(sr.reports.iter().map(block_info));
    Ok(())
}

fn read_rr(body: &[u8], count: usize, r: &mut Received) -> Result<(), RtcpError> {
    if body.len() < 8 + count * BLOCK_LEN {
        return Err(RtcpError::BadReport);
    }
    let rr = ReceiverReport::unmarshal(&mut &body[..]).map_err(|_| RtcpError::BadReport)?;
    r.sender_ssrc.get_or_insert(rr.ssrc);
    r.reports.extend(rr.reports.iter().map(block_info));
    Ok(())
}

/// The first CNAME of an SDES; a malformed SDES is ignored, not an error.
fn read_cname(body: &[u8]) -> Option<String> {
    let sdes = SourceDescription::unmarshal(&mut &body[..]).ok()?;
    sdes.chunks
        .iter()
        .flat_map(|c| c.items.iter())
        .find(|i| i.sdes_type == SdesType::SdesCname)
        .map(|i| String::from_utf8_lossy(&i.text).into_owned())
}

fn block_info(b: &ReceptionReport) -> ReportBlockInfo {
    ReportBlockInfo {
        ssrc: b.ssrc,
        fraction_lost: b.fraction_lost,
        total_lost: b.total_lost,
        highest_seq: b.last_sequence_number,
        jitter: b.jitter,
        lsr: b.last_sender_report,
        dlsr: b.delay,
    }
}

/// Per-stream RTCP state: builds our SR (with an RR block about the peer's
/// stream and SDES CNAME) and computes the round-trip time (RFC 3550 §6.4.1:
/// A − LSR − DLSR) from their reports.
#[derive(Clone, Debug)]
pub struct RtcpState {
    our_ssrc: u32,
    cname: String,
    /// NTP timestamp of our last SR and when we built it: maps `Instant`s to NTP.
    last_sr_sent: Option<(u64, Instant)>,
    /// Middle 32 bits of the NTP timestamp of their last SR, and its arrival.
    last_sr_received: Option<(u32, Instant)>,
    rtt_ms: Option<f64>,
    remote: Option<ReportBlockInfo>,
}

impl RtcpState {
    /// State for our stream `our_ssrc`, announced with `cname` (RFC 3550
    /// §6.5.1; cut to the 255 bytes an SDES item holds).
    pub fn new(our_ssrc: u32, cname: String) -> Self {
        let mut cname = cname;
        let mut cut = cname.len().min(255);
        while !cname.is_char_boundary(cut) {
            cut -= 1;
        }
        cname.truncate(cut);
        RtcpState {
            our_ssrc,
            cname,
            last_sr_sent: None,
            last_sr_received: None,
            rtt_ms: None,
            remote: None,
        }
    }

    /// Takes in a parsed compound packet received at `now`: their SR time
    /// (for our LSR/DLSR) and their report block about our stream (loss,
    /// jitter, RTT).
    pub fn on_received(&mut self, r: &Received, now: Instant) {
        if let Some(sr) = &r.sr {
            self.last_sr_received = Some((ntp_middle(sr.ntp), now));
        }
        let Some(block) = r.report_about(self.our_ssrc) else {
            return;
        };
        self.remote = Some(*block);
        if block.lsr == 0 {
            return;
        }
        if let Some((ntp, at)) = self.last_sr_sent {
            let a = ntp_middle(ntp_add(ntp, now.saturating_duration_since(at)));
            if let Some(rtt) = rtt_ms(a, block.lsr, block.dlsr) {
                self.rtt_ms = Some(rtt);
            }
        }
    }

    /// Appends our report to `out`: an SR (RFC 3550 §6.4.1) if we have sent
    /// packets, else an RR (§6.4.2), with a report block about their stream
    /// `rx` if given (taking its fraction lost, A.3), then SDES CNAME (§6.5).
    /// `wall` gives the NTP timestamp and `rtp_ts_now` the RTP timestamp of
    /// the same instant.
    #[allow(
        clippy::too_many_arguments,
        reason = "the inputs of an SR (RFC 3550 §6.4.1), each from a different owner"
    )]
    pub fn build_report(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sent_packets: u32,
        sent_octets: u32,
        rtp_ts_now: u32,
        rx: Option<(&mut RxStats, u32)>,
        out: &mut Vec<u8>,
    ) {
        let reports: Vec<ReceptionReport> = rx
            .map(|(rx, their_ssrc)| self.block(rx, their_ssrc, now))
            .into_iter()
            .collect();
        let report = if sent_packets > 0 {
            let ntp = ntp_from(wall);
            self.last_sr_sent = Some((ntp, now));
            SenderReport {
                ssrc: self.our_ssrc,
                ntp_time: ntp,
                rtp_time: rtp_ts_now,
                packet_count: sent_packets,
                octet_count: sent_octets,
                reports,
                profile_extensions: Bytes::new(),
            }
            .marshal()
        } else {
            ReceiverReport {
                ssrc: self.our_ssrc,
                reports,
                profile_extensions: Bytes::new(),
            }
            .marshal()
        };
        let sdes = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: self.our_ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: Bytes::from(self.cname.clone()),
                }],
            }],
        }
        .marshal();
        // Neither can fail: one block, a CNAME of at most 255 bytes.
        if let (Ok(report), Ok(sdes)) = (report, sdes) {
            out.extend_from_slice(&report);
            out.extend_from_slice(&sdes);
        }
    }

    /// Appends a BYE for our stream (RFC 3550 §6.6) to `out`, to follow a report.
    pub fn build_bye(&self, out: &mut Vec<u8>) {
        if let Ok(bye) = (Goodbye {
            sources: vec![self.our_ssrc],
            reason: Bytes::new(),
        })
        .marshal()
        {
            out.extend_from_slice(&bye);
        }
    }

    /// Last round-trip time measured from their report blocks, ms.
    pub fn rtt_ms(&self) -> Option<f64> {
        self.rtt_ms
    }

    /// Fraction of our packets they lost (8-bit fixed point), from their last report.
    pub fn remote_fraction_lost(&self) -> Option<u8> {
        self.remote.map(|r| r.fraction_lost)
    }

    /// Interarrival jitter they measured on our stream, timestamp units.
    pub fn remote_jitter(&self) -> Option<u32> {
        self.remote.map(|r| r.jitter)
    }

    /// A report block about `ssrc` from `rx` (RFC 3550 §6.4.1, A.3).
    fn block(&self, rx: &mut RxStats, ssrc: u32, now: Instant) -> ReceptionReport {
        let (lsr, dlsr) = match self.last_sr_received {
            Some((lsr, at)) => (lsr, to_units_65536(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        // 24-bit two's complement, clamped (RFC 3550 §6.4.1).
        let lost = rx.lost().clamp(-0x80_0000, 0x7f_ffff) as i32 as u32 & 0xff_ffff;
        ReceptionReport {
            ssrc,
            fraction_lost: rx.take_fraction_lost(),
            total_lost: lost,
            last_sequence_number: rx.extended_highest_seq(),
            jitter: rx.jitter_units(),
            last_sender_report: lsr,
            delay: dlsr,
        }
    }
}

/// RFC 3550 §6.4.1: RTT = A − LSR − DLSR, all in 1/65536 s (middle 32 bits
/// of NTP time); None when negative (clocks or a stale report).
fn rtt_ms(a: u32, lsr: u32, dlsr: u32) -> Option<f64> {
    let rtt = a.wrapping_sub(lsr).wrapping_sub(dlsr);
    if rtt as i32 >= 0 {
        Some(f64::from(rtt) * 1000.0 / 65536.0)
    } else {
        None
    }
}

/// NTP timestamp (RFC 3550 §4) of a wall-clock time; 0 before 1970.
fn ntp_from(wall: SystemTime) -> u64 {
    let Ok(d) = wall.duration_since(UNIX_EPOCH) else {
        return 0;
    };
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// `ntp` plus a duration.
fn ntp_add(ntp: u64, d: std::time::Duration) -> u64 {
    let frac = (u128::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ntp.wrapping_add(d.as_secs() << 32)
        .wrapping_add(frac as u64)
}

/// The middle 32 bits of an NTP timestamp (RFC 3550 §6.4.1 LSR).
fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s (RFC 3550 §6.4.1 DLSR), saturating.
fn to_units_65536(d: std::time::Duration) -> u32 {
    let units = d.as_nanos() * 65536 / 1_000_000_000;
    units.min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    /// An RxStats that saw packets 1..=10 without 5 (one lost, probation on 1).
    fn rx_with_loss(t0: Instant) -> RxStats {
        let mut rx = RxStats::new(8000);
        for seq in (1u16..=10).filter(|s| *s != 5) {
            rx.on_packet(seq, u32::from(seq) * 160, ms(t0, u64::from(seq) * 20));
        }
        rx
    }

    #[test]
    fn build_then_parse_round_trip() {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(250);
        let mut ours = RtcpState::new(0x1111, "switch@10.0.0.1".into());
        let mut rx = rx_with_loss(t0);
        let mut out = Vec::new();
        ours.build_report(
            ms(t0, 300),
            wall,
            50,
            8000,
            123_456,
            Some((&mut rx, 0x2222)),
            &mut out,
        );
        let r = parse(&out).unwrap();
        assert_eq!(r.sender_ssrc, Some(0x1111));
        let sr = r.sr.unwrap();
        assert_eq!((sr.packets, sr.octets, sr.rtp_ts), (50, 8000, 123_456));
        assert_eq!(sr.ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(sr.ntp & 0xffff_ffff, 1 << 30); // 0.25 s
        let b = r.report.unwrap();
        assert_eq!(b.ssrc, 0x2222);
        assert_eq!(b.fraction_lost, (256 / 9) as u8);
        assert_eq!(b.total_lost, 1);
        assert_eq!(b.highest_seq, 10);
        assert_eq!((b.lsr, b.dlsr), (0, 0));
        assert_eq!(r.cname.as_deref(), Some("switch@10.0.0.1"));
        assert!(!r.bye);
        // Fraction lost was taken: the next report says 0.
        let mut out = Vec::new();
        ours.build_report(
            ms(t0, 5300),
            wall,
            60,
            9600,
            0,
            Some((&mut rx, 0x2222)),
            &mut out,
        );
        assert_eq!(parse(&out).unwrap().report.unwrap().fraction_lost, 0);

        // Nothing sent: an RR; with a BYE after it.
        let mut quiet = RtcpState::new(0x3333, "q".into());
        let mut out = Vec::new();
        quiet.build_report(t0, wall, 0, 0, 0, None, &mut out);
        quiet.build_bye(&mut out);
        let r = parse(&out).unwrap();
        assert_eq!((r.sender_ssrc, r.sr, r.report), (Some(0x3333), None, None));
        assert!(r.bye);
    }

    #[test]
    fn negative_loss_is_24_bit_twos_complement() {
        let t0 = Instant::now();
        let mut rx = RxStats::new(8000);
        for seq in [1u16, 2, 3, 3, 3] {
            rx.on_packet(seq, 0, t0);
        }
        assert_eq!(rx.lost(), -2);
        let mut out = Vec::new();
        RtcpState::new(1, "x".into()).build_report(
            t0,
            SystemTime::now(),
            1,
            1,
            0,
            Some((&mut rx, 2)),
            &mut out,
        );
        assert_eq!(parse(&out).unwrap().report.unwrap().total_lost, 0xff_fffe);
    }

    #[test]
    fn rtt_from_rfc_example() {
        // RFC 3550 §6.4.1 figure: A = b710:8000, LSR = b705:2000, DLSR = 0005:4000 → 6.125 s.
        let rtt = rtt_ms(0xb710_8000, 0xb705_2000, 0x0005_4000).unwrap();
        assert!((rtt - 6125.0).abs() < 1e-9, "{rtt}");
        assert_eq!(rtt_ms(0x0001_0000, 0x0001_0000, 0x0000_0001), None);
    }

    #[test]
    fn rtt_between_two_states() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut a = RtcpState::new(0xa, "a".into());
        let mut b = RtcpState::new(0xb, "b".into());
        let mut b_rx = rx_with_loss(t0);
        // a sends an SR at t0; it reaches b 40 ms later.
        let mut sr = Vec::new();
        a.build_report(t0, wall, 10, 1600, 0, None, &mut sr);
        b.on_received(&parse(&sr).unwrap(), ms(t0, 40));
        // b answers 300 ms after that; it reaches a 60 ms later: RTT 100 ms.
        let mut rr = Vec::new();
        b.build_report(ms(t0, 340), wall, 0, 0, 0, Some((&mut b_rx, 0xa)), &mut rr);
        let r = parse(&rr).unwrap();
        let block = r.report_about(0xa).unwrap();
        assert_eq!(block.dlsr, 300 * 65536 / 1000);
        assert_eq!(block.lsr, ntp_middle(parse(&sr).unwrap().sr.unwrap().ntp));
        assert_eq!(a.rtt_ms(), None);
        a.on_received(&r, ms(t0, 400));
        let rtt = a.rtt_ms().unwrap();
        assert!((rtt - 100.0).abs() < 0.1, "{rtt}");
        assert_eq!(a.remote_fraction_lost(), Some(block.fraction_lost));
        assert_eq!(a.remote_jitter(), Some(block.jitter));
        // A hand-made block: LSR of a's SR, DLSR 1 s, arriving 1.25 s after the SR.
        let lsr = block.lsr;
        let hand = Received {
            reports: vec![ReportBlockInfo {
                ssrc: 0xa,
                lsr,
                dlsr: 65536,
                ..Default::default()
            }],
            ..Default::default()
        };
        a.on_received(&hand, ms(t0, 1250));
        assert!((a.rtt_ms().unwrap() - 250.0).abs() < 0.1);
        // Reports about someone else are not ours.
        let other = Received {
            reports: vec![ReportBlockInfo {
                ssrc: 0xc,
                fraction_lost: 9,
                ..Default::default()
            }],
            ..Default::default()
        };
        a.on_received(&other, ms(t0, 1300));
        assert_eq!(a.remote_fraction_lost(), Some(0));
    }

    fn rr(count: u8, blocks: usize) -> Vec<u8> {
        let words = 1 + blocks * 6;
        let mut p = vec![0x80 | count, PT_RR, 0, words as u8, 0, 0, 0, 7];
        p.extend(std::iter::repeat_n(0u8, blocks * BLOCK_LEN));
        p
    }

    #[test]
    fn rejects_malformed() {
        for n in 0..4 {
            assert_eq!(parse(&rr(0, 0)[..n]).unwrap_err(), RtcpError::TooShort);
        }
        assert!(parse(&rr(0, 0)).is_ok());
        assert!(parse(&rr(1, 1)).is_ok());
        // Wrong version.
        let mut p = rr(0, 0);
        p[0] = 0x40;
        assert_eq!(parse(&p).unwrap_err(), RtcpError::BadVersion);
        // Length past the end; trailing bytes too short for a header.
        let mut p = rr(0, 0);
        p[3] = 2;
        assert_eq!(parse(&p).unwrap_err(), RtcpError::BadLength);
        let mut p = rr(0, 0);
        p.extend_from_slice(&[0x80, PT_BYE]);
        assert_eq!(parse(&p).unwrap_err(), RtcpError::TooShort);
        // RR claiming more blocks than it has bytes; same for SR.
        assert_eq!(parse(&rr(2, 1)).unwrap_err(), RtcpError::BadReport);
        assert_eq!(parse(&rr(31, 0)).unwrap_err(), RtcpError::BadReport);
        let mut sr = vec![0x81, PT_SR, 0, 6];
        sr.extend_from_slice(&[0; 24]);
        assert_eq!(parse(&sr).unwrap_err(), RtcpError::BadReport);
        // SR shorter than the sender info.
        assert_eq!(
            parse(&[0x80, PT_SR, 0, 1, 0, 0, 0, 1]).unwrap_err(),
            RtcpError::BadReport
        );
        // First packet not SR/RR.
        assert_eq!(
            parse(&[0x81, PT_BYE, 0, 1, 0, 0, 0, 1]).unwrap_err(),
            RtcpError::NotReport
        );
        // Padding on the first (A.2), padding not in the last, bad counts.
        let mut p = rr(0, 0);
        p[0] |= 0x20;
        assert_eq!(parse(&p).unwrap_err(), RtcpError::BadPadding);
        let bye_padded = |pad: u8| vec![0xa1, PT_BYE, 0, 2, 0, 0, 0, 1, 0, 0, 0, pad];
        let mut p = rr(0, 0);
        p.extend(bye_padded(4));
        assert!(parse(&p).unwrap().bye);
        for pad in [0u8, 9] {
            let mut p = rr(0, 0);
            p.extend(bye_padded(pad));
            assert_eq!(parse(&p).unwrap_err(), RtcpError::BadPadding, "pad {pad}");
        }
        let mut p = rr(0, 0);
        p.extend(bye_padded(4));
        p.extend(rr(0, 0));
        assert_eq!(parse(&p).unwrap_err(), RtcpError::BadPadding);
        // Unknown and feedback packets are skipped; a bad SDES only loses the CNAME.
        let mut p = rr(0, 0);
        p.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x81, PT_SDES, 0, 1, 0, 0, 0, 1]);
        let r = parse(&p).unwrap();
        assert_eq!(r.cname, None);
        let labels = [RtcpError::TooShort, RtcpError::BadLength].map(RtcpError::as_str);
        assert_eq!(labels, ["too_short", "bad_length"]);
    }

    #[test]
    fn never_panics_on_truncations_and_bit_flips() {
        let t0 = Instant::now();
        let mut rx = rx_with_loss(t0);
        let mut out = Vec::new();
        let mut s = RtcpState::new(5, "cname".into());
        s.build_report(
            t0,
            SystemTime::now(),
            3,
            480,
            0,
            Some((&mut rx, 6)),
            &mut out,
        );
        s.build_bye(&mut out);
        for n in 0..=out.len() {
            let _ = parse(&out[..n]);
        }
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut p = out.clone();
                p[i] ^= 1 << bit;
                let _ = parse(&p);
            }
        }
    }

    #[test]
    fn long_cname_is_cut() {
        let mut out = Vec::new();
        RtcpState::new(1, "é".repeat(200)).build_report(
            Instant::now(),
            SystemTime::now(),
            0,
            0,
            0,
            None,
            &mut out,
        );
        assert_eq!(parse(&out).unwrap().cname.unwrap().len(), 254);
    }
}
