//! Per-frame cost of the codecs and the streaming resampler: one 20 ms frame per iteration.

use criterion::{criterion_group, criterion_main, Criterion};
use media::audio::Rate;
use media::codec::{self, Codec, Decoder, Encoder};
use media::resample::Resampler;
use media::tone::sine;
use std::hint::black_box;

/// One 20 ms frame of speech-level signal at `rate` (a 1 kHz sine at -16 dBFS).
fn frame(rate: Rate) -> Vec<i16> {
    sine(1000.0, rate, 20, -16.0)
}

fn bench_codec(
    c: &mut Criterion,
    label: &str,
    mut enc: Box<dyn Encoder>,
    mut dec: Box<dyn Decoder>,
) {
    let pcm = frame(enc.codec().pcm_rate());
    let mut payload = Vec::with_capacity(1500);
    // Warm the coders into a steady state and keep one representative payload.
    for _ in 0..50 {
        payload.clear();
        enc.encode(&pcm, &mut payload).unwrap();
    }
    let mut group = c.benchmark_group(label);
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(1500);
        b.iter(|| {
            out.clear();
            enc.encode(black_box(&pcm), &mut out).unwrap();
            black_box(&out);
        })
    });
    group.bench_function("decode", |b| {
        let mut out = Vec::with_capacity(2000);
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&payload), &mut out).unwrap();
            black_box(&out);
        })
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
        let enc = codec::encoder(codec).unwrap();
        let dec = codec::decoder(codec).unwrap();
        bench_codec(c, codec.name(), enc, dec);
    }
    for complexity in [0, 3, 5] {
        let enc = codec::opus_encoder(complexity, codec::OPUS_DEFAULT_BITRATE_BPS).unwrap();
        let dec = codec::decoder(Codec::Opus).unwrap();
        bench_codec(c, &format!("opus-c{complexity}"), enc, dec);
    }
}

fn resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    for (label, from, to) in [
        ("8k-16k", Rate::Nb8k, Rate::Wb16k),
        ("16k-8k", Rate::Wb16k, Rate::Nb8k),
    ] {
        let pcm = frame(from);
        let mut r = Resampler::new(from, to);
        let mut out = Vec::with_capacity(to.frame_len());
        group.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&pcm), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codecs, resampler);
criterion_main!(benches);
