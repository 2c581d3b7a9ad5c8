//! Recognition rate of the pocketsphinx built-in on menu words spoken by
//! espeak-ng, after the codec a call would use: G.722 and Opus (16 kHz)
//! and G.711 µ-law (8 kHz, upsampled for the 16 kHz model). Prints the
//! figures; asserts the wideband rate (narrowband is documented as
//! needing the WebSocket hook).

use media::audio::Rate;
use media::codec::{decoder, encoder, Codec};
use plugins::asr::Pocketsphinx;
use plugins::tts::Espeak;
use plugins::{RecognizeParams, Recognizer, Synthesizer};

const WORDS: [&str; 5] = ["sales", "support", "billing", "operator", "agent"];
const VOICES: [&str; 2] = ["en-us", "en-gb"];

/// `pcm` (at `rate`) through `codec` and back, 20 ms frames.
fn through(codec: Codec, rate: Rate, pcm: &[i16]) -> Vec<i16> {
    let (mut enc, mut dec) = (encoder(codec).unwrap(), decoder(codec).unwrap());
    let mut out = Vec::new();
    let (mut payload, mut frame) = (Vec::new(), Vec::new());
    for chunk in pcm.chunks(rate.frame_len()) {
        frame.clear();
        frame.extend_from_slice(chunk);
        frame.resize(rate.frame_len(), 0);
        payload.clear();
        enc.encode(&frame, &mut payload).unwrap();
        dec.decode(&payload, &mut out).unwrap();
    }
    out
}

fn rate_of(codec: Codec, rate: Rate) -> (usize, usize, Vec<String>) {
    let (tts, asr) = (Espeak::default(), Pocketsphinx::default());
    let (mut ok, mut n, mut misses) = (0, 0, Vec::new());
    for voice in VOICES {
        for word in WORDS {
            let (hz, pcm) = tts.synthesize(word, voice).unwrap();
            let f: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let audio = through(codec, rate, &media::resample::convert(&f, hz, rate));
            let params = RecognizeParams {
                rate: rate.hz(),
                phrases: WORDS.iter().map(|w| w.to_string()).collect(),
                language: "en-US".into(),
            };
            let mut s = asr.open(&params).unwrap();
            s.feed(&audio).unwrap();
            let got = s.close().unwrap().pop().map(|r| r.text).unwrap_or_default();
            n += 1;
            if got == word {
                ok += 1;
            } else {
                misses.push(format!("{voice} {word:?} → {got:?}"));
            }
        }
    }
    (ok, n, misses)
}

#[test]
fn pocketsphinx_recognition_rate_by_codec() {
    if std::process::Command::new("pocketsphinx_continuous")
        .arg("-h")
        .output()
        .is_err()
    {
        panic!("pocketsphinx_continuous is missing: run .ci/deps test");
    }
    let mut wide = 0;
    for (name, codec, rate) in [
        ("G.722 (16 kHz)", Codec::G722, Rate::Wb16k),
        ("Opus (16 kHz)", Codec::Opus, Rate::Wb16k),
        ("G.711 µ-law (8 kHz)", Codec::Pcmu, Rate::Nb8k),
    ] {
        let (ok, n, misses) = rate_of(codec, rate);
        println!("{name}: {ok}/{n} recognized; misses: {misses:?}");
        if rate == Rate::Wb16k {
            wide += ok;
        }
    }
    assert!(wide >= 18, "wideband: {wide}/20");
}
