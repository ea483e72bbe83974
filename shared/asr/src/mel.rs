//! Whisper's input: the log-mel spectrogram of 16 kHz mono audio (25 ms periodic Hann windows
//! every 10 ms, 80 Slaney-normalised mel bands up to 8 kHz, log10, floored 8 below the peak
//! and scaled to about −1…1), as OpenAI's reference computes it.

use std::f32::consts::PI;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in one 30 s window.
pub const WINDOW_FRAMES: usize = 3_000;

/// The mel filterbank as librosa builds it (`htk=False`, `norm="slaney"`): `n_mels` rows of
/// `N_FFT / 2 + 1` weights.
pub fn filterbank(n_mels: usize) -> Vec<Vec<f32>> {
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel, logstep) = (1_000.0f64, 1_000.0 / f_sp, (6.4f64).ln() / 27.0);
    let hz_to_mel = |f: f64| if f < min_log_hz { f / f_sp } else { min_log_mel + (f / min_log_hz).ln() / logstep };
    let mel_to_hz = |m: f64| if m < min_log_mel { m * f_sp } else { min_log_hz * ((m - min_log_mel) * logstep).exp() };
    let bins = N_FFT / 2 + 1;
    let fft_hz: Vec<f64> = (0..bins).map(|k| k as f64 * SAMPLE_RATE as f64 / N_FFT as f64).collect();
    let top = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
    let mel_hz: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64)).collect();
    (0..n_mels)
        .map(|i| {
            let norm = 2.0 / (mel_hz[i + 2] - mel_hz[i]);
            fft_hz
                .iter()
                .map(|f| {
                    let lower = (f - mel_hz[i]) / (mel_hz[i + 1] - mel_hz[i]);
                    let upper = (mel_hz[i + 2] - f) / (mel_hz[i + 2] - mel_hz[i + 1]);
                    (lower.min(upper).max(0.0) * norm) as f32
                })
                .collect()
        })
        .collect()
}

/// The log-mel spectrogram of `pcm` followed by 30 s of silence (so every window is whole),
/// as `n_mels` rows of `pcm.len() / HOP + WINDOW_FRAMES` frames, row-major.
pub fn log_mel(pcm: &[f32], filters: &[Vec<f32>]) -> (Vec<f32>, usize) {
    let n_mels = filters.len();
    let mut audio = pcm.to_vec();
    audio.resize(pcm.len() + WINDOW_FRAMES * HOP, 0.0);
    // Centred frames: the signal is reflected by half a window at each end.
    let half = N_FFT / 2;
    let reflect = |i: isize| -> f32 {
        let n = audio.len() as isize;
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        audio[j.clamp(0, n - 1) as usize]
    };
    let frames = audio.len() / HOP; // the reference drops the last of len/HOP + 1
    let window: Vec<f32> = (0..N_FFT).map(|n| 0.5 - 0.5 * (2.0 * PI * n as f32 / N_FFT as f32).cos()).collect();
    let fft = FftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let bins = N_FFT / 2 + 1;
    let mut mel = vec![0f32; n_mels * frames];
    let mut buf = vec![Complex::new(0.0, 0.0); N_FFT];
    let mut power = vec![0f32; bins];
    for t in 0..frames {
        let start = (t * HOP) as isize - half as isize;
        for (n, slot) in buf.iter_mut().enumerate() {
            *slot = Complex::new(reflect(start + n as isize) * window[n], 0.0);
        }
        fft.process(&mut buf);
        for (k, p) in power.iter_mut().enumerate() {
            *p = buf[k].norm_sqr();
        }
        for (m, row) in filters.iter().enumerate() {
            let energy: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
            mel[m * frames + t] = energy.max(1e-10).log10();
        }
    }
    let peak = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in &mut mel {
        *v = (v.max(peak - 8.0) + 4.0) / 4.0;
    }
    (mel, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filterbank_is_librosas() {
        let f = filterbank(80);
        assert_eq!((f.len(), f[0].len()), (80, 201));
        // Known values of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).
        assert!((f[0][1] - 0.024_862_7).abs() < 1e-5, "{}", f[0][1]);
        assert!((f[79][200]).abs() < 1e-6);
        // Every band has weight, and bands cover increasing frequencies.
        let peak = |row: &Vec<f32>| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!(f.iter().all(|row| row.iter().any(|w| *w > 0.0)));
        assert!(peak(&f[10]) < peak(&f[40]) && peak(&f[40]) < peak(&f[79]));
    }

    #[test]
    fn a_tone_lights_its_own_band() {
        let tone: Vec<f32> = (0..SAMPLE_RATE).map(|i| (2.0 * PI * 1_000.0 * i as f32 / SAMPLE_RATE as f32).sin() * 0.5).collect();
        let filters = filterbank(80);
        let (mel, frames) = log_mel(&tone, &filters);
        assert_eq!(frames, SAMPLE_RATE / HOP + WINDOW_FRAMES);
        let t = 50; // half a second in
        let band = (0..80).max_by(|a, b| mel[a * frames + t].total_cmp(&mel[b * frames + t])).unwrap();
        let hz_peak = filters[band].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as f32 * 40.0;
        assert!((hz_peak - 1_000.0).abs() < 100.0, "band {band} peaks at {hz_peak} Hz");
        assert!(mel.iter().all(|v| v.is_finite() && *v <= 1.5 && *v >= -1.5));
    }
}
