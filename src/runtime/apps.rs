//! The runtime side of IVR calls: prompts (files and text-to-speech), speech recognition and
//! HTTP requests, done off the switch task and reported back to it.
//!
//! - **Prompts** go through one worker thread, in the order asked, so a prompt that must be
//!   rendered first (text-to-speech, cached on disk) never overtakes one asked before it,
//!   and a stop reaches the media thread after the plays asked before it. A prompt that
//!   cannot be loaded still ends with a `PlayFinished` (the flow goes on; the error is
//!   logged).
//! - **Speech**: the media thread hands the decoded audio of listened-to legs to one speech
//!   thread, which runs a recognizer session per leg and reports what it hears.
//! - **HTTP**: one tokio task per request, bounded by the step's timeout.

use super::media::MediaHandle;
use super::ToSwitch;
use crate::call::{AppInput, AppServices, HttpRequest};
use crate::ivr::{Grammar, HttpMethod, Prompt};
use crate::media::engine::{LegId, MediaCommand, MediaEvent};
use crate::speech::{SpeechEngine, SpeechEvent};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::mpsc::Sender;
use tracing::{debug, warn};

/// Work for the prompt thread.
enum PromptJob {
    Play {
        leg: LegId,
        prompt: Prompt,
        barge_in: bool,
        looped: bool,
    },
    Stop {
        leg: LegId,
    },
}

/// Work for the speech thread.
pub(crate) enum SpeechMsg {
    Start { leg: LegId, grammar: Grammar },
    Stop { leg: LegId },
    Audio { leg: LegId, pcm: Vec<i16> },
}

/// The switch's [`AppServices`] in the real runtime.
pub(crate) struct AppPorts {
    prompts: mpsc::Sender<PromptJob>,
    speech: mpsc::Sender<SpeechMsg>,
    to_switch: Sender<ToSwitch>,
}

impl AppPorts {
    /// Starts the prompt and speech threads. `prompts_dir` holds recorded prompts,
    /// `cache_dir` rendered speech.
    pub(crate) fn start(
        media: MediaHandle,
        to_switch: Sender<ToSwitch>,
        prompts_dir: PathBuf,
        cache_dir: PathBuf,
        engine: Option<Arc<dyn SpeechEngine>>,
        speech: (mpsc::Sender<SpeechMsg>, mpsc::Receiver<SpeechMsg>),
    ) -> std::io::Result<AppPorts> {
        let (ptx, prx) = mpsc::channel();
        let ts = to_switch.clone();
        let tts = crate::speech::tts::Tts::new(cache_dir);
        std::thread::Builder::new()
            .name("prompts".into())
            .spawn(move || prompt_thread(prx, media, ts, prompts_dir, tts))?;
        let (stx, srx) = speech;
        let ts = to_switch.clone();
        std::thread::Builder::new()
            .name("speech".into())
            .spawn(move || speech_thread(srx, ts, engine))?;
        Ok(AppPorts {
            prompts: ptx,
            speech: stx,
            to_switch,
        })
    }
}

impl AppServices for AppPorts {
    fn play(&mut self, leg: LegId, prompt: &Prompt, barge_in: bool, looped: bool) {
        let _ = self.prompts.send(PromptJob::Play {
            leg,
            prompt: prompt.clone(),
            barge_in,
            looped,
        });
    }
    fn stop_play(&mut self, leg: LegId) {
        let _ = self.prompts.send(PromptJob::Stop { leg });
    }
    fn listen(&mut self, leg: LegId, grammar: Option<&Grammar>) {
        let _ = self.speech.send(match grammar {
            Some(g) => SpeechMsg::Start {
                leg,
                grammar: g.clone(),
            },
            None => SpeechMsg::Stop { leg },
        });
    }
    fn http(&mut self, req: HttpRequest) {
        let to_switch = self.to_switch.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(req.timeout, http_request(&req)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no response within {:?}", req.timeout)),
            };
            if let Err(e) = &result {
                debug!(call = req.call, error = %e, "flow HTTP request failed");
            }
            let _ = to_switch
                .send(ToSwitch::App(AppInput::HttpDone {
                    call: req.call,
                    id: req.id,
                    result,
                }))
                .await;
        });
    }
}

/// Resolves prompts in order and hands them to the media thread.
fn prompt_thread(
    rx: mpsc::Receiver<PromptJob>,
    media: MediaHandle,
    to_switch: Sender<ToSwitch>,
    prompts_dir: PathBuf,
    tts: crate::speech::tts::Tts,
) {
    let mut cache: HashMap<Prompt, crate::media::engine::Prompt> = HashMap::new();
    while let Ok(job) = rx.recv() {
        match job {
            PromptJob::Stop { leg } => media.command(MediaCommand::StopPlay { leg }),
            PromptJob::Play {
                leg,
                prompt,
                barge_in,
                looped,
            } => {
                let pcm = match cache.get(&prompt) {
                    Some(p) => Ok(p.clone()),
                    None => {
                        let loaded = match &prompt {
                            Prompt::File(f) => crate::media::prompt::load_wav(&prompts_dir.join(f))
                                .map_err(|e| e.to_string()),
                            Prompt::Tts(text) => {
                                // A recording of the text, when there is one, beats TTS.
                                let recorded = prompts_dir.join(recorded_name(text));
                                let path = if recorded.is_file() {
                                    Ok(recorded)
                                } else {
                                    tts.render(text).map_err(|e| e.to_string())
                                };
                                path.and_then(|p| {
                                    crate::media::prompt::load_wav(&p).map_err(|e| e.to_string())
                                })
                            }
                        };
                        if let Ok(p) = &loaded {
                            // Files and fixed texts repeat; texts with caller data rarely do.
                            if cache.len() > 512 {
                                cache.clear();
                            }
                            cache.insert(prompt.clone(), p.clone());
                        }
                        loaded
                    }
                };
                match pcm {
                    Ok(p) => media.command(MediaCommand::Play {
                        leg,
                        prompt: p,
                        looped,
                        barge_in,
                        enqueue: true,
                    }),
                    Err(e) => {
                        warn!(%prompt, error = %e, "prompt unavailable; skipped");
                        let _ =
                            to_switch.blocking_send(ToSwitch::Media(MediaEvent::PlayFinished {
                                leg,
                                interrupted: false,
                            }));
                    }
                }
            }
        }
    }
}

/// The file name of a recording that replaces the text-to-speech of `text`: its words,
/// lowercased, joined by `-` (at most 80 characters), `.wav`; e.g. "How can I help you?"
/// → `how-can-i-help-you.wav` in the prompts directory.
pub(crate) fn recorded_name(text: &str) -> String {
    let mut slug = crate::ivr::normalize(text).replace(' ', "-");
    if slug.len() > 80 {
        let mut cut = 80;
        while !slug.is_char_boundary(cut) {
            cut -= 1;
        }
        slug.truncate(cut);
    }
    format!("{slug}.wav")
}

/// Runs a recognizer session per listened-to leg.
fn speech_thread(
    rx: mpsc::Receiver<SpeechMsg>,
    to_switch: Sender<ToSwitch>,
    engine: Option<Arc<dyn SpeechEngine>>,
) {
    let mut sessions: HashMap<LegId, Box<dyn crate::speech::Recognizer>> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            SpeechMsg::Start { leg, grammar } => {
                sessions.remove(&leg);
                let Some(engine) = &engine else {
                    warn!("no speech engine: speech input is not recognised");
                    continue;
                };
                match engine.session(&grammar, crate::media::engine::PCM_RATE) {
                    Ok(s) => {
                        sessions.insert(leg, s);
                    }
                    Err(e) => warn!(error = %e, "speech session failed"),
                }
            }
            SpeechMsg::Stop { leg } => {
                sessions.remove(&leg);
            }
            SpeechMsg::Audio { leg, pcm } => {
                let Some(s) = sessions.get_mut(&leg) else {
                    continue;
                };
                for ev in s.push(&pcm) {
                    debug!(leg, event = ?ev, "speech");
                    let input = match ev {
                        SpeechEvent::Started => AppInput::SpeechStarted { leg },
                        SpeechEvent::Partial { .. } => continue,
                        SpeechEvent::Final { text, confidence } => AppInput::Speech {
                            leg,
                            text,
                            confidence,
                        },
                        SpeechEvent::NoMatch => AppInput::SpeechNoMatch { leg },
                    };
                    let _ = to_switch.blocking_send(ToSwitch::App(input));
                }
            }
        }
    }
}

/// One HTTP/1.1 request (http:// only) with a JSON body; the response's status and body.
async fn http_request(req: &HttpRequest) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Full};
    let uri: hyper::Uri = req.url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "only http:// URLs are supported, not {}",
            uri.scheme_str().unwrap_or("?")
        ));
    }
    let host = uri.host().ok_or("URL without a host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = match req.method {
        HttpMethod::Get => hyper::Method::GET,
        HttpMethod::Post => hyper::Method::POST,
    };
    let body = req.body.clone().unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "Switchboard")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let limited = http_body_util::Limited::new(resp.into_body(), 1 << 20);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::recorded_name;

    #[test]
    fn recorded_prompts_are_named_by_their_words() {
        assert_eq!(
            recorded_name("How can I help you?"),
            "how-can-i-help-you.wav"
        );
        assert_eq!(
            recorded_name("Sorry, I didn't catch that."),
            "sorry-i-didnt-catch-that.wav"
        );
        assert!(recorded_name(&"word ".repeat(40)).len() <= 84);
    }
}
