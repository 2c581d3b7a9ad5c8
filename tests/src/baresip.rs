//! baresip (1.0) as a headless agent phone: a config folder with an
//! auto-answer account, audio from a WAV file, control over `ctrl_tcp`
//! (netstrings of JSON).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running baresip; killed on drop.
pub struct Baresip {
    child: Child,
    /// Its config folder.
    pub dir: PathBuf,
    /// SIP port.
    pub sip_port: u16,
    ctrl: SocketAddr,
}

impl Baresip {
    /// Starts a phone registered as `user`/`password` at the switch on
    /// `switch_port`, auto-answering, playing `wav` as its microphone.
    pub fn start(dir: &Path, user: &str, password: &str, switch_port: u16, wav: &Path) -> Baresip {
        Baresip::start_with(dir, user, password, switch_port, wav, "PCMU,PCMA")
    }

    /// Like [`Baresip::start`], offering only `codecs` (e.g. "opus", "PCMU").
    pub fn start_with(
        dir: &Path,
        user: &str,
        password: &str,
        switch_port: u16,
        wav: &Path,
        codecs: &str,
    ) -> Baresip {
        crate::require("baresip");
        std::fs::create_dir_all(dir).unwrap();
        let sip_port = crate::free_port("127.0.0.1");
        let ctrl_port = crate::free_port("127.0.0.1");
        let rtp = crate::free_port("127.0.0.1");
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1:{switch_port}>;auth_pass={password};answermode=auto;regint=60;audio_codecs={codecs}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("config"),
            format!(
                "sip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\naudio_player alsa,null\naudio_alert alsa,null\n\
                 audio_source aufile,{wav}\nrtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule opus.so\nmodule g722.so\n\
                 module aufile.so\nmodule alsa.so\nmodule sndfile.so\nmodule_app account.so\nmodule_app menu.so\n\
                 module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\nsnd_path {rec}\n",
                rtp + 40,
                wav = wav.display(),
                rec = rec.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        Baresip {
            child,
            dir: dir.to_path_buf(),
            sip_port,
            ctrl: SocketAddr::from(([127, 0, 0, 1], ctrl_port)),
        }
    }

    /// baresip's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Waits until the log shows `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Sends a ctrl_tcp command (`dial`, `hangup`, ...).
    pub fn command(&self, command: &str, params: &str) -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&self.ctrl, Duration::from_secs(2))?;
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        s.write_all(format!("{}:{json},", json.len()).as_bytes())?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        Ok(())
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Baresip {
    /// The recordings `sndfile` wrote: (heard, sent) WAVs of the last call.
    pub fn recordings(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let mut dec = None;
        let mut enc = None;
        if let Ok(rd) = std::fs::read_dir(self.dir.join("rec")) {
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                if name.ends_with("-dec.wav") {
                    dec = Some(f);
                } else if name.ends_with("-enc.wav") {
                    enc = Some(f);
                }
            }
        }
        (dec, enc)
    }
}
