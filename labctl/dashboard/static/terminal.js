// A terminal into one VM (xterm.js, shipped in the package): output arrives as
// binary frames, keys, pastes and resizes go as JSON. Closing it (or the tab)
// ends the SSH session. Used by the instructor's page and the student's.
"use strict";
function openTerminal(panel, path, title) {
  panel.innerHTML = `<div class="termbar"><b></b> <button class="termclose">close</button></div><div class="term"></div>`;
  panel.querySelector("b").textContent = title;
  panel.hidden = false;
  const term = new Terminal({cursorBlink: true, convertEol: false, fontSize: 14});
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(panel.querySelector(".term"));
  fit.fit();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/${path}&cols=${term.cols}&rows=${term.rows}`);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {  // a refusal, said before the close
      try { term.write(`\r\n[${JSON.parse(event.data).error}]\r\n`); } catch (e) { /* not ours */ }
    } else {
      term.write(new Uint8Array(event.data));
    }
  };
  socket.onclose = () => term.write("\r\n[session closed]\r\n");
  term.onData((data) => { if (socket.readyState === 1) socket.send(JSON.stringify({type: "input", data})); });
  const resize = () => {
    fit.fit();
    if (socket.readyState === 1) socket.send(JSON.stringify({type: "resize", cols: term.cols, rows: term.rows}));
  };
  window.addEventListener("resize", resize);
  panel.querySelector(".termclose").addEventListener("click", () => {
    window.removeEventListener("resize", resize);
    socket.close(); term.dispose(); panel.hidden = true; panel.innerHTML = "";
  });
  term.focus();
  return term;
}
