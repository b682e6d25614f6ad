// veil serve: the review page. Plain JavaScript, no build step, nothing from the network.
//
// Every file becomes a card: the picture with its faces (and, with `veil serve --plates on` or
// `--text on`, its licence plates and text) outlined, what its metadata reveals, a live
// preview of the cleaned result and a "Clean and download" button. Faces, plates and text are
// hidden unless the person reviewing chooses to keep one; extra areas can be added by dragging
// or with the keyboard. All coordinates sent to the API are full-size image pixels (see
// serve-api contract); the overlay's viewBox is the full-size picture, so the browser does the
// mapping to whatever size the picture is shown at. A recording's card has a player instead of
// pictures; the speech of a video or a recording can be heard with a new voice before cleaning.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PREVIEW_DELAY_MS = 250; // debounce: one preview per burst of edits, not per keypress
  const DRAG_THRESHOLD_PX = 5; // smaller moves are clicks, not a new area
  const KIND_WORDS = {
    photo: "photo",
    animation: "animation",
    video: "video",
    recording: "recording",
    drawing: "drawing",
  };
  // How each verdict of the independent check is shown; anything else reads "not checked".
  const VERDICT_CLASS = { protected: "ok", unconfirmed: "unconfirmed" };
  // Plates and text (the scan's `marks`): how the page names each kind (one on the picture,
  // a line of the panel, counts), and the scan's flag and the server's option that say
  // whether it was looked for.
  const MARK_KINDS = ["plate", "text"];
  const MARK_WORDS = {
    plate: {
      title: "Plate",
      heading: "Plates",
      one: "plate",
      many: "plates",
      none: "no plates",
      flag: "plates",
    },
    text: {
      title: "Text",
      heading: "Text",
      one: "piece of text",
      many: "pieces of text",
      none: "no text",
      flag: "text",
    },
  };

  // Filled from /api/config: the methods and their labels come from the server's registry, so
  // the page never keeps a list of its own (none offered if the server cannot be asked).
  let config = { methods: [], labels: {}, method: "fill", voice: "anonymize", verify: false };
  let cardCount = 0; // only for unique element ids
  const cards = new Set();
  let scanQueue = Promise.resolve(); // scans run one after another: detection is CPU-heavy

  const statusEl = document.getElementById("status");
  const cardsEl = document.getElementById("cards");
  const emptyEl = document.getElementById("empty");
  const zipButton = document.getElementById("zip");
  const fileInput = document.getElementById("files");

  // -- small helpers -------------------------------------------------------------------------

  /** Build an HTML element: el("p", {class: "x"}, "text", child). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(key, value === true ? "" : String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  /** Say something to screen-reader users (and everyone: the status line is visible). */
  function announce(message) {
    statusEl.textContent = message;
  }

  function plural(n, one, many = `${one}s`) {
    return `${n} ${n === 1 ? one : many}`;
  }

  /** ["a", "b", "c"] as "a, b and c". */
  function listed(words) {
    if (words.length < 2) return words.join("");
    return `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
  }

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body || {};
    }
  }

  /** fetch() with the contract's content types; non-2xx answers become ApiError. */
  async function api(path, { json, file, signal } = {}) {
    const init = { method: json || file ? "POST" : "GET", signal, headers: {} };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (file !== undefined) {
      init.headers["Content-Type"] = "application/octet-stream";
      init.body = file;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "veil is not answering. Is “veil serve” still running?");
    }
    if (!response.ok) {
      let body = {};
      try {
        body = await response.json();
      } catch {
        // not JSON (a proxy's page, say): fall back to the status line below
      }
      throw new ApiError(response.status, body.error || `HTTP ${response.status}`, body);
    }
    return response;
  }

  /** A plain-words sentence for a failed request; `doing` is "open", "clean" or "other". */
  function explain(err, doing = "other") {
    if (!(err instanceof ApiError)) return `Something went wrong: ${err.message || err}.`;
    if (err.status === 0) return err.message;
    // The server's own message is already plain words ("the file is truncated"); lead with
    // what it means for the person.
    const detail = err.message ? `: ${err.message.replace(/[.]$/, "")}.` : ".";
    if (err.status === 404) {
      return "veil no longer has this file (it is deleted when left idle). Add it again.";
    }
    if (err.status === 413) return `This file is too big to open here${detail}`;
    if (doing === "open" && err.status === 415) {
      return `This is not a photo, video or recording veil can clean${detail}`;
    }
    if (doing === "open" && err.status === 422) {
      return `This file is damaged or incomplete, so veil cannot open it${detail}`;
    }
    if (doing === "clean" && err.status === 422) {
      return `veil would not write it, to be safe${detail}`;
    }
    return `veil could not do this${detail}`;
  }

  /** A plain-words error at the end of `where`, replacing the one before; role="alert" so
   * that it is read out at once. */
  function showAlert(message, where) {
    const alert = el("p", { class: "alert", role: "alert" }, message);
    where.querySelector(":scope > .alert")?.remove();
    where.append(alert);
    return alert;
  }

  /** Start a download of `href` as `name` through a real <a download>. */
  function download(href, name) {
    const link = el("a", { href, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // -- one card per file ---------------------------------------------------------------------

  class Card {
    constructor(file) {
      this.n = ++cardCount;
      this.file = file;
      this.scan = null; // the /api/scan answer
      this.keep = new Set(); // face indices kept visible; every other face is hidden
      this.keepMarks = new Set(); // plate and text indices kept visible (`keep_marks`)
      this.areas = []; // extra areas to hide: [x1, y1, x2, y2] in full-size pixels
      this.method = config.method;
      this.voice = config.voice; // sound: "anonymize" (a new voice for speech) or "keep"
      this.voiceUrl = null; // the last preview of a new voice (a blob: URL)
      this.voiceAbort = null;
      this.cleaned = null; // the /api/clean answer, while it matches the current edits
      this.cleaning = null; // the clean in flight, if any
      this.edition = 0; // counts edits, to tell whether a clean's answer is still current
      this.removed = false;
      this.previewUrl = null;
      this.previewTimer = 0;
      this.previewAbort = null;
      this.previewCount = 0;
      this.drag = null;
      this.dragEndedAt = -Infinity;
      this.build();
    }

    id(suffix) {
      return `card-${this.n}-${suffix}`;
    }

    build() {
      this.title = el("h3", { id: this.id("title"), class: "card-title" }, this.file.name);
      this.meta = el("p", { class: "card-meta" }, "Looking for faces and metadata…");
      this.removeButton = el("button", { type: "button", class: "button quiet" }, "Remove");
      this.removeButton.setAttribute("aria-label", `Remove ${this.file.name}`);
      this.removeButton.addEventListener("click", () => this.remove());
      this.root = el(
        "article",
        { class: "card", "aria-labelledby": this.id("title"), "data-state": "scanning" },
        el("div", { class: "card-head" }, el("div", {}, this.title, this.meta), this.removeButton),
      );
      cardsEl.append(this.root);
    }

    showError(message, where = this.root) {
      return showAlert(message, where);
    }

    async upload() {
      const { file } = this;
      if (this.removed) return; // removed while waiting its turn
      if (config.max_upload_bytes && file.size > config.max_upload_bytes) {
        const mb = Math.floor(config.max_upload_bytes / 2 ** 20);
        this.fail(`This file is too big to open here (the limit is ${mb} MB).`);
        return;
      }
      try {
        const response = await api(`/api/scan?name=${encodeURIComponent(file.name)}`, { file });
        this.scan = await response.json();
      } catch (err) {
        if (this.removed) return;
        this.fail(explain(err, "open"));
        return;
      }
      if (this.removed) {
        this.discard(); // removed while it was being scanned
        return;
      }
      this.render();
      announce(`${this.scan.name}: ${this.summary()}`);
      updateZip();
    }

    fail(message) {
      this.root.dataset.state = "error";
      this.meta.textContent = "Could not be opened.";
      this.showError(message);
      announce(`${this.file.name}: ${message}`);
      updateZip();
    }

    summary() {
      const s = this.scan;
      const meta = s.reveals.length
        ? plural(s.reveals.length, "identifying detail")
        : "no identifying metadata";
      if (s.kind === "recording") return `${this.speechWords()}, ${meta}`;
      const faces = s.faces.length ? plural(s.faces.length, "face") + " found" : "no faces found";
      // Plates and text only where the server looks for them (the panel says where not).
      const marks = MARK_KINDS.filter((kind) => this.lookedFor(kind)).map((kind) => {
        const n = this.marksOf(kind).length;
        const w = MARK_WORDS[kind];
        return n ? `${plural(n, w.one, w.many)} found` : `${w.none} found`;
      });
      return [faces, ...marks, meta].join(", ");
    }

    /** Whether the server looked for plates ("plate") or text ("text") in this file. */
    lookedFor(kind) {
      return Boolean(this.scan[MARK_WORDS[kind].flag]);
    }

    marksOf(kind) {
      return this.scan.marks.filter((m) => m.kind === kind);
    }

    /** "Plate 1", "Text 2": numbered within its kind, as a person counts them. */
    markName(mark) {
      return `${MARK_WORDS[mark.kind].title} ${this.marksOf(mark.kind).indexOf(mark) + 1}`;
    }

    /** Videos and recordings: whether the sound holds speech, in plain words. */
    speechWords() {
      const s = this.scan;
      if (!s.sound) return "no sound";
      if (s.speech === null) return "speech not checked";
      if (!s.speech) return "no speech found";
      return `speech in ${Math.max(1, Math.round(100 * s.speech))}% of the sound`;
    }

    /** A video or a recording: its sound can be given a new voice. */
    hasSound() {
      return this.scan.kind === "video" || this.scan.kind === "recording";
    }

    // -- the card once the file is scanned ---------------------------------------------------

    render() {
      const s = this.scan;
      this.root.dataset.state = "ready";
      this.root.dataset.kind = s.kind;
      this.root.dataset.id = s.id;
      this.title.textContent = s.name;
      this.removeButton.setAttribute("aria-label", `Remove ${s.name}`);
      const frames = s.kind === "photo" ? "" : `, ${plural(s.frames, "frame")}`;
      const size = s.kind === "recording" ? "" : `, ${s.width} × ${s.height} px${frames}`;
      const kind = KIND_WORDS[s.kind] || s.kind;
      this.meta.textContent = `${s.format} ${kind}${size} — ${this.summary()}`;

      const body = el("div", { class: "card-body" });
      // Reading (and tab) order: the pictures, what the metadata gives away, then the controls.
      const shown = s.kind === "recording" ? this.buildSound() : this.buildPictures();
      body.append(shown, this.buildReveals(), this.buildPanel());
      this.root.append(body);
      if (s.editable) this.schedulePreview(0);
    }

    buildPictures() {
      const s = this.scan;
      // The picture and its overlay share one box; the overlay's user units are full-size
      // pixels, so face boxes from the API are drawn as they are. (`scale` only relates
      // original.jpg's own pixels to those, which the viewBox makes unnecessary here.)
      const counted = [plural(s.faces.length, "face")];
      for (const kind of MARK_KINDS) {
        const n = this.marksOf(kind).length;
        if (n) counted.push(plural(n, MARK_WORDS[kind].one, MARK_WORDS[kind].many));
      }
      this.picture = el("img", {
        class: "picture",
        src: s.original,
        alt: `${s.name}, with ${listed(counted)} outlined`,
        width: Math.round(s.width * s.scale),
        height: Math.round(s.height * s.scale),
      });
      this.overlay = svg("svg", {
        class: "overlay",
        viewBox: `0 0 ${s.width} ${s.height}`,
        preserveAspectRatio: "none",
        role: "group",
        "aria-label": `${s.marks.length ? "Faces, plates and text" : "Faces"} in ${s.name}`,
      });
      this.areaLayer = svg("g", { class: "areas" });
      this.faceEls = s.faces.map((face, i) => this.buildFace(face, i));
      // Plates and text under the faces: where a face overlaps a sign or a badge, the face is
      // drawn on top, unshaded by the sign, and a click there toggles the face.
      this.markEls = s.marks.map((mark) => this.buildMark(mark));
      this.overlay.append(...this.markEls, ...this.faceEls, this.areaLayer);
      const stage = el("div", { class: "stage" }, this.picture, this.overlay);
      // Labels and strokes keep one on-screen size whatever size the picture is shown at.
      new ResizeObserver(() => this.layoutOverlay()).observe(stage);

      const found = MARK_KINDS.filter((k) => this.marksOf(k).length);
      const things = listed(["faces", ...found.map((k) => MARK_WORDS[k].heading.toLowerCase())]);
      const howTo = s.editable
        ? `Outlined ${things} will be hidden: click one (or Tab to it, press Space) to keep ` +
          "it visible. Drag across the picture to hide an area veil missed."
        : s.kind === "video"
          ? "A frame from the video, with the faces found in it outlined." +
            (s.marks.length ? " So are the plates and text of the frames veil looked at." : "")
          : s.kind === "drawing"
            ? `The drawing as it shows, with the ${things} found on it outlined.`
            : `The first frame, with the ${things} found in it outlined.`;
      const original = el(
        "figure",
        { class: "pane original" },
        el("h4", {}, "Original"),
        stage,
        el("figcaption", { class: "hint" }, howTo),
      );

      if (s.editable) {
        this.overlay.addEventListener("pointerdown", (e) => this.dragStart(e));
        this.overlay.addEventListener("pointermove", (e) => this.dragMove(e));
        this.overlay.addEventListener("pointerup", (e) => this.dragEnd(e));
        this.overlay.addEventListener("pointercancel", () => this.dragCancel());
      }

      this.preview = el("img", {
        class: "preview",
        alt: `Preview of ${s.name} as it will be downloaded`,
        width: Math.round(s.width * s.scale),
        height: Math.round(s.height * s.scale),
        hidden: true, // until there is something to show
      });
      this.previewNote = el("p", { class: "hint preview-note" });
      if (s.kind === "drawing") {
        this.previewNote.textContent =
          "This is an SVG drawing: every face in the pictures it embeds will be hidden, and " +
          "its metadata, comments and links removed. A face drawn in its shapes cannot be " +
          "hidden: cleaning then stops and says so. After cleaning, the result is shown here.";
      } else if (!s.editable) {
        this.previewNote.textContent =
          `This is ${s.kind === "video" ? "a video" : "an animation"}: every face in every ` +
          `frame will be hidden.${this.alsoHidden()} Single faces cannot be kept and areas ` +
          "cannot be added. After cleaning, a frame of the result is shown here.";
      }
      const result = el(
        "figure",
        { class: "pane result" },
        el("h4", {}, s.editable ? "Preview of the download" : "Result"),
        el("div", { class: "stage" }, this.preview),
        this.previewNote,
      );
      return el("div", { class: "pictures" }, original, result);
    }

    /** A recording: the original to listen to; after cleaning, the outcome holds the new one. */
    buildSound() {
      const s = this.scan;
      const player = el("audio", { controls: true, preload: "metadata", src: s.original });
      player.setAttribute("aria-label", `The sound of the original ${s.name}`);
      const original = el(
        "figure",
        { class: "pane original" },
        el("h4", {}, "Original"),
        player,
        el(
          "figcaption",
          { class: "hint" },
          "A recording has no faces to hide. Its tags are removed, and speech gets a new " +
            "voice unless you choose to keep it.",
        ),
      );
      return el("div", { class: "pictures sound" }, original);
    }

    /** A video's or an animation's cards: what else is hidden besides faces, in words. */
    alsoHidden() {
      const looked = MARK_KINDS.filter((kind) => this.lookedFor(kind));
      if (!looked.length) return "";
      const every = looked.map((kind) => MARK_WORDS[kind].one).join(" and ");
      return ` So will every ${every} veil finds.`;
    }

    /** One outlined thing on the overlay, a face or a plate or text: a ring for keyboard focus,
     * a shade, the outline and a label; in a photo also a toggle button (click, Space, Enter)
     * that calls `toggle`. */
    outlined(kind, [x1, y1, x2, y2], toggle) {
      const box = { x: x1, y: y1, width: x2 - x1, height: y2 - y1 };
      const g = svg("g", { class: kind });
      g.append(
        svg("rect", { class: "ring", ...box }),
        svg("rect", { class: "shade", ...box }),
        svg("rect", { class: "outline", ...box }),
      );
      const label = svg("g", { class: "label" });
      label.append(
        svg("rect", { class: "label-bg", x: 0, y: 0, height: 20 }),
        svg("text", { x: 5, y: 15 }),
      );
      g.append(label);
      if (this.scan.editable) {
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        g.addEventListener("click", () => {
          if (performance.now() - this.dragEndedAt > 100) toggle();
        });
        g.addEventListener("keydown", (e) => {
          if ((e.key === "Enter" || e.key === " ") && !e.repeat) {
            e.preventDefault(); // Space would scroll the page
            toggle();
          }
        });
      }
      return g;
    }

    buildFace(face, i) {
      const g = this.outlined("face", face.box, () => this.toggleFace(face.index));
      g.setAttribute("data-index", face.index);
      this.paintFace(g, face, i);
      return g;
    }

    /** A plate or text: outlined as a whole box (as it is hidden), not as a face's oval. */
    buildMark(mark) {
      const g = this.outlined("mark", mark.region, () => this.toggleMark(mark.index));
      g.setAttribute("data-index", mark.index);
      g.setAttribute("data-kind", mark.kind);
      this.paintMark(g, mark);
      return g;
    }

    /** Outline, label and ARIA state of one face: dashed "Hidden" or solid "Kept". */
    paintFace(g, face, i) {
      const kept = this.keep.has(face.index);
      g.classList.toggle("kept", kept);
      const word = kept ? "Kept" : "Hidden";
      g.querySelector("text").textContent = `${i + 1} ${word}`;
      if (this.scan.editable) {
        g.setAttribute("aria-pressed", String(kept));
        g.setAttribute(
          "aria-label",
          kept
            ? `Face ${i + 1}: kept visible — press to hide`
            : `Face ${i + 1}: hidden — press to keep visible`,
        );
      }
    }

    toggleFace(index) {
      const i = this.scan.faces.findIndex((f) => f.index === index);
      if (this.keep.has(index)) this.keep.delete(index);
      else this.keep.add(index);
      this.paintFace(this.faceEls[i], this.scan.faces[i], i);
      this.layoutOverlay(); // the label's width changed with its word
      this.updateFaceSummary();
      announce(`Face ${i + 1} will be ${this.keep.has(index) ? "kept visible" : "hidden"}.`);
      this.edited();
    }

    /** Outline, label and ARIA state of a plate or text: "Plate 1 Hidden" or "Plate 1 Kept". */
    paintMark(g, mark) {
      const kept = this.keepMarks.has(mark.index);
      const name = this.markName(mark);
      g.classList.toggle("kept", kept);
      g.querySelector("text").textContent = `${name} ${kept ? "Kept" : "Hidden"}`;
      if (this.scan.editable) {
        g.setAttribute("aria-pressed", String(kept));
        g.setAttribute(
          "aria-label",
          kept
            ? `${name}: kept visible — press to hide`
            : `${name}: hidden — press to keep visible`,
        );
      }
    }

    toggleMark(index) {
      const i = this.scan.marks.findIndex((m) => m.index === index);
      const mark = this.scan.marks[i];
      if (this.keepMarks.has(index)) this.keepMarks.delete(index);
      else this.keepMarks.add(index);
      this.paintMark(this.markEls[i], mark);
      this.layoutOverlay(); // the label's width changed with its word
      this.updateMarkSummary();
      const will = this.keepMarks.has(index) ? "kept visible" : "hidden";
      announce(`${this.markName(mark)} will be ${will}.`);
      this.edited();
    }

    /** Screen size of one full-size pixel changes with the layout: keep labels readable. */
    layoutOverlay() {
      const shown = this.overlay.getBoundingClientRect().width;
      if (!shown) return;
      const k = this.scan.width / shown; // full-size pixels per CSS pixel
      this.overlay.style.setProperty("--k", String(k));
      for (const label of this.overlay.querySelectorAll(".label")) {
        const box = label.parentNode.querySelector(".outline");
        const x = Number(box.getAttribute("x"));
        const y = Number(box.getAttribute("y"));
        // About 8 CSS px per character of the 13 px bold label, plus padding.
        const width = label.querySelector("text").textContent.length * 8 + 10;
        label.querySelector(".label-bg").setAttribute("width", String(width));
        // Above the box where there is room, else just inside its top edge; never past the
        // right edge, where the preview beside the picture would cover it.
        const top = y - 21 * k >= 0 ? y - 21 * k : y;
        const left = Math.max(0, Math.min(x, this.scan.width - width * k));
        label.setAttribute("transform", `translate(${left} ${top}) scale(${k})`);
      }
    }

    // -- extra areas ---------------------------------------------------------------------------

    /** Full-size pixel under a pointer event, clamped to the picture. */
    pointAt(event) {
      const r = this.overlay.getBoundingClientRect();
      const x = ((event.clientX - r.left) / r.width) * this.scan.width;
      const y = ((event.clientY - r.top) / r.height) * this.scan.height;
      return [clamp(x, 0, this.scan.width), clamp(y, 0, this.scan.height)];
    }

    dragStart(event) {
      if (event.button !== 0 || event.target.closest(".area")) return;
      this.drag = { start: this.pointAt(event), x: event.clientX, y: event.clientY, live: null };
      this.drag.pointer = event.pointerId;
    }

    dragMove(event) {
      const d = this.drag;
      if (!d || event.pointerId !== d.pointer) return;
      if (!d.live) {
        const moved = Math.hypot(event.clientX - d.x, event.clientY - d.y);
        if (moved < DRAG_THRESHOLD_PX) return;
        // Only now capture the pointer: a plain click must still reach the face under it.
        this.overlay.setPointerCapture(event.pointerId);
        d.live = svg("rect", { class: "drawing" });
        this.overlay.append(d.live);
      }
      d.box = boxFrom(d.start, this.pointAt(event));
      setRect(d.live, d.box);
    }

    dragEnd(event) {
      const d = this.drag;
      if (!d || event.pointerId !== d.pointer) return;
      this.drag = null;
      if (!d.live) return; // a click: the face's own click handler deals with it
      d.live.remove();
      // The click that follows a drag must not toggle the face the drag ended on.
      this.dragEndedAt = performance.now();
      const box = d.box.map(Math.round);
      if (box[2] - box[0] >= 2 && box[3] - box[1] >= 2) this.addArea(box, false);
    }

    dragCancel() {
      this.drag?.live?.remove();
      this.drag = null;
    }

    /** The keyboard way: a box in the middle, focused, ready to move with the arrow keys. */
    addCentredArea() {
      const { width: w, height: h } = this.scan;
      const bw = Math.max(2, Math.round(w / 5));
      const bh = Math.max(2, Math.round(h / 5));
      const x = Math.round((w - bw) / 2);
      const y = Math.round((h - bh) / 2);
      this.addArea([x, y, x + bw, y + bh], true);
    }

    addArea(box, focus) {
      const area = { box };
      const g = svg("g", {
        class: "area",
        tabindex: 0,
        role: "group",
        "aria-roledescription": "area to hide",
      });
      g.append(svg("rect", { class: "ring" }), svg("rect", { class: "outline" }));
      g.addEventListener("keydown", (e) => this.areaKey(e, area));
      area.g = g;
      this.areaLayer.append(g);

      const remove = el("button", { type: "button", class: "button quiet small" }, "Remove");
      remove.addEventListener("click", () => this.removeArea(area));
      area.text = el("span");
      area.remove = remove;
      area.li = el("li", {}, area.text, " ", remove);
      this.areaList.append(area.li);
      this.areas.push(area);
      this.paintAreas();
      announce(`Area ${this.areas.length} added; it will be hidden.`);
      if (focus) g.focus();
      this.edited();
    }

    removeArea(area) {
      const at = this.areas.indexOf(area);
      this.areas.splice(at, 1);
      area.g.remove();
      area.li.remove();
      this.paintAreas();
      announce(`Area ${at + 1} removed.`);
      // Keep keyboard users in the list rather than dropping focus onto <body>.
      const neighbour = this.areas[at] || this.areas[at - 1];
      (neighbour ? neighbour.remove : this.addAreaButton).focus();
      this.edited();
    }

    /** Arrow keys move the focused area; Shift+arrows resize it; Delete removes it. */
    areaKey(event, area) {
      const { width: w, height: h } = this.scan;
      const step = Math.max(1, Math.round(Math.min(w, h) / 50));
      const dx = { ArrowLeft: -step, ArrowRight: step }[event.key] || 0;
      const dy = { ArrowUp: -step, ArrowDown: step }[event.key] || 0;
      if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        this.removeArea(area);
        return;
      }
      if (!dx && !dy) return;
      event.preventDefault(); // arrows would scroll the page
      let [x1, y1, x2, y2] = area.box;
      if (event.shiftKey) {
        x2 = clamp(x2 + dx, x1 + 2, w);
        y2 = clamp(y2 + dy, y1 + 2, h);
      } else {
        const mx = clamp(dx, -x1, w - x2);
        const my = clamp(dy, -y1, h - y2);
        [x1, y1, x2, y2] = [x1 + mx, y1 + my, x2 + mx, y2 + my];
      }
      area.box = [x1, y1, x2, y2];
      this.paintAreas();
      // Say where it ended up once the keys stop, not at every press.
      clearTimeout(this.whereTimer);
      this.whereTimer = setTimeout(() => announce(area.text.textContent), 600);
      this.edited();
    }

    paintAreas() {
      this.areas.forEach((area, i) => {
        const [x1, y1, x2, y2] = area.box;
        for (const rect of area.g.querySelectorAll("rect")) setRect(rect, area.box);
        const where = `${x2 - x1} × ${y2 - y1} px at ${x1}, ${y1}`;
        area.g.setAttribute(
          "aria-label",
          `Area ${i + 1} to hide, ${where}. Arrow keys move it, Shift with arrow keys ` +
            "resizes it, Delete removes it.",
        );
        area.text.textContent = `Area ${i + 1}: ${where}`;
        area.remove.setAttribute("aria-label", `Remove area ${i + 1}`);
      });
      this.areaEmpty.hidden = this.areas.length > 0;
    }

    // -- the side panel ----------------------------------------------------------------------

    buildPanel() {
      const s = this.scan;
      const panel = el("div", { class: "panel" });

      if (s.kind !== "recording") {
        this.faceSummary = el("p", { class: "face-summary" });
        panel.append(el("section", {}, el("h4", {}, "Faces"), this.faceSummary));
        this.updateFaceSummary();
        // Also when neither is looked for: the page says so, and how to ask for them.
        this.markSummary = el("div", { class: "mark-summary" });
        panel.append(el("section", {}, el("h4", {}, "Plates and text"), this.markSummary));
        this.updateMarkSummary();
      }

      if (s.editable) {
        this.areaList = el("ul", { class: "area-list" });
        this.areaEmpty = el("p", { class: "hint" }, "None yet.");
        this.addAreaButton = el("button", { type: "button", class: "button" }, "Add region");
        this.addAreaButton.addEventListener("click", () => this.addCentredArea());
        panel.append(
          el(
            "section",
            {},
            el("h4", {}, "Extra areas to hide"),
            el(
              "p",
              { class: "hint" },
              "Drag across the picture, or add a region and move it with the arrow keys " +
                "(Shift + arrows resizes).",
            ),
            this.areaEmpty,
            this.areaList,
            this.addAreaButton,
          ),
        );
      }

      if (s.kind !== "recording") panel.append(this.buildMethods());
      if (this.hasSound()) panel.append(this.buildVoice());

      this.cleanButton = el("button", { type: "button", class: "button primary" });
      this.cleanButton.textContent = "Clean and download";
      this.cleanButton.addEventListener("click", () => this.cleanAndDownload());
      this.outcome = el("div", { class: "outcome", "aria-live": "polite" });
      panel.append(el("div", { class: "actions" }, this.cleanButton), this.outcome);
      return panel;
    }

    updateFaceSummary() {
      const s = this.scan;
      let text;
      if (!s.faces.length) {
        text = "No faces found.";
      } else if (!s.editable) {
        text = `${plural(s.faces.length, "face")} found; every face in every frame is hidden.`;
      } else {
        const kept = this.keep.size;
        text = `${s.faces.length - kept} hidden, ${kept} kept visible.`;
      }
      if (s.sampled_frames) {
        text += ` Faces were looked for in ${plural(s.sampled_frames, "sampled frame")}.`;
      }
      this.faceSummary.textContent = text;
    }

    /** One line per kind: not looked for (and how to ask), none found, or hidden and kept;
     * one line in all where neither was looked for (the default). */
    updateMarkSummary() {
      const s = this.scan;
      if (!MARK_KINDS.some((kind) => this.lookedFor(kind))) {
        const start = "start veil serve with --plates on or --text on";
        this.markSummary.replaceChildren(el("p", { class: "hint" }, `Not looked for (${start}).`));
        return;
      }
      const lines = MARK_KINDS.map((kind) => {
        const w = MARK_WORDS[kind];
        if (!this.lookedFor(kind)) {
          const start = `start veil serve with --${w.flag} on`;
          return el("p", { class: "hint" }, `${w.heading}: not looked for (${start}).`);
        }
        const found = this.marksOf(kind);
        let text;
        if (!found.length) {
          text = "none found.";
        } else if (!s.editable) {
          const where = s.kind === "video" ? " in the sampled frames" : " in the first frame";
          text = `${found.length} found${where}; every ${w.one} in every frame is hidden.`;
        } else {
          const kept = found.filter((m) => this.keepMarks.has(m.index)).length;
          text = `${found.length - kept} hidden, ${kept} kept visible.`;
        }
        return el("p", { class: "marks-found", "data-kind": kind }, `${w.heading}: ${text}`);
      });
      this.markSummary.replaceChildren(...lines);
    }

    buildMethods() {
      const set = el("fieldset", { class: "methods" }, el("legend", {}, "How to hide"));
      for (const method of config.methods) {
        const id = this.id(`method-${method}`);
        const input = el("input", {
          type: "radio",
          name: this.id("method"),
          id,
          value: method,
          checked: method === this.method,
        });
        input.addEventListener("change", () => {
          this.method = method;
          announce(`${this.scan.name}: faces will be hidden with ${method}.`);
          this.edited();
        });
        const label = el("label", { for: id }, config.labels[method] || method);
        set.append(el("div", { class: "choice" }, input, label));
      }
      return set;
    }

    /** Videos and recordings: speech gets a new voice unless the person unticks it (their own
     * voice-over); where there is speech, a few seconds of it can be heard with a new voice. */
    buildVoice() {
      const id = this.id("voice");
      const input = el("input", { type: "checkbox", id, checked: this.voice === "anonymize" });
      input.addEventListener("change", () => {
        this.voice = input.checked ? "anonymize" : "keep";
        announce(
          input.checked
            ? `${this.scan.name}: speech will get a new voice.`
            : `${this.scan.name}: voices will be kept as they are.`,
        );
        this.edited();
      });
      const label = el("label", { for: id }, "Give speech a new voice");
      const hint = el(
        "p",
        { class: "hint" },
        "A voice can name its speaker as a face can. The new voice hides who speaks; words can " +
        "become hard to follow, so listen before you publish.",
      );
      const found = this.speechWords();
      const speech = el(
        "p",
        { class: "speech" },
        `${found[0].toUpperCase()}${found.slice(1)}.`,
        this.scan.speech_note ? ` (${this.scan.speech_note})` : null,
      );
      const section = el(
        "section",
        { class: "voice" },
        el("h4", {}, "Voices"),
        speech,
        el("div", { class: "choice" }, input, label),
        hint,
      );
      if (this.scan.speech > 0) section.append(this.buildVoicePreview());
      return section;
    }

    /** "Hear the new voice": a few seconds of the speech with a voice drawn for the preview. */
    buildVoicePreview() {
      const button = el("button", { type: "button", class: "button" }, "Hear the new voice");
      this.voicePlayer = el("audio", { controls: true, hidden: true });
      this.voicePlayer.setAttribute("aria-label", `A new voice for ${this.scan.name}`);
      this.voiceNote = el(
        "p",
        { class: "hint voice-note" },
        "Every clean draws its own new voice, so the cleaned file will sound like a different " +
          "new speaker than this preview.",
      );
      button.addEventListener("click", () => this.hearNewVoice(button));
      return el("div", { class: "voice-preview" }, button, this.voicePlayer, this.voiceNote);
    }

    async hearNewVoice(button) {
      this.voiceAbort?.abort();
      const abort = (this.voiceAbort = new AbortController());
      const where = this.voicePlayer.parentNode;
      button.disabled = true;
      this.root.dataset.voicePreview = "loading";
      announce(`${this.scan.name}: making a new voice…`);
      try {
        const response = await api("/api/voice-preview", {
          json: { id: this.scan.id },
          signal: abort.signal,
        });
        const from = Number(response.headers.get("Veil-Preview-Start") || 0);
        const url = URL.createObjectURL(await response.blob());
        if (abort.signal.aborted || this.removed) {
          URL.revokeObjectURL(url);
          return;
        }
        if (this.voiceUrl) URL.revokeObjectURL(this.voiceUrl);
        this.voiceUrl = url;
        this.voicePlayer.src = url;
        this.voicePlayer.hidden = false;
        where.querySelector(":scope > .alert")?.remove();
        this.root.dataset.voicePreview = "ready";
        const at = from >= 1 ? ` from ${clock(from)}` : "";
        announce(`${this.scan.name}: the speech${at} with a new voice.`);
        // Asked for by a click, so the browser lets it play at once; if not, the controls do.
        this.voicePlayer.play().catch(() => {});
      } catch (err) {
        if (err.name === "AbortError") return;
        this.root.dataset.voicePreview = "error";
        this.showError(`The new voice could not be made: ${explain(err)}`, where);
      } finally {
        button.disabled = false;
      }
    }

    buildReveals() {
      const s = this.scan;
      const section = el(
        "section",
        { class: "reveals", "aria-labelledby": this.id("reveals") },
        el("h4", { id: this.id("reveals") }, "What this file reveals"),
      );
      if (!s.reveals.length) {
        section.append(el("p", {}, "No identifying metadata found."));
        return section;
      }
      // One term per kind of reveal (Place, Device, …), one description per finding.
      const groups = new Map();
      for (const r of s.reveals) {
        if (!groups.has(r.category)) groups.set(r.category, { label: r.label, items: [] });
        groups.get(r.category).items.push(r);
      }
      const list = el("dl", {});
      for (const { label, items } of groups.values()) {
        const group = el("div", { class: "group" }, el("dt", {}, label));
        for (const r of items) {
          group.append(el("dd", {}, `${r.value} `, el("span", { class: "tag" }, `(${r.name})`)));
        }
        list.append(group);
      }
      section.append(
        list,
        el("p", { class: "hint" }, "All of this is removed from the copy you download."),
      );
      return section;
    }

    // -- preview and cleaning ----------------------------------------------------------------

    edits() {
      return {
        id: this.scan.id,
        method: this.method,
        voice: this.hasSound() ? this.voice : null,
        keep: [...this.keep].sort((a, b) => a - b),
        add: this.areas.map((a) => a.box),
        keep_marks: [...this.keepMarks].sort((a, b) => a - b),
      };
    }

    /** Any change: the last cleaned file no longer matches, and the preview is redrawn. */
    edited() {
      this.edition += 1;
      if (this.cleaned) {
        this.cleaned = null;
        this.outcome.replaceChildren(
          el("p", { class: "hint" }, "Changed since the last download: clean again."),
        );
      }
      if (this.scan.editable) this.schedulePreview(PREVIEW_DELAY_MS);
    }

    schedulePreview(delay) {
      clearTimeout(this.previewTimer);
      this.previewTimer = setTimeout(() => this.refreshPreview(), delay);
    }

    async refreshPreview() {
      this.previewAbort?.abort(); // an older, slower answer must not replace a newer one
      const abort = (this.previewAbort = new AbortController());
      this.root.dataset.preview = "loading";
      this.previewNote.textContent = "Updating the preview…";
      try {
        const response = await api("/api/preview", { json: this.edits(), signal: abort.signal });
        const url = URL.createObjectURL(await response.blob());
        if (abort.signal.aborted) {
          URL.revokeObjectURL(url);
          return;
        }
        await showImage(this.preview, url);
        if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
        this.previewUrl = url;
        this.previewCount += 1;
        this.root.dataset.previewCount = String(this.previewCount);
        this.root.dataset.preview = "ready";
        this.previewNote.textContent = "";
        this.preview.hidden = false;
        this.previewNote.parentNode.querySelector(":scope > .alert")?.remove();
      } catch (err) {
        if (err.name === "AbortError") return;
        this.root.dataset.preview = "error";
        this.previewNote.textContent = "";
        const where = this.previewNote.parentNode;
        this.showError(`The preview could not be made: ${explain(err)}`, where);
      }
    }

    /** POST /api/clean with the current edits; the answer, or null after showing why not. */
    clean() {
      if (this.cleaned) return Promise.resolve(this.cleaned);
      // "Clean and download" and "Download all as zip" may ask at once: clean only once.
      this.cleaning ??= this.cleanNow().finally(() => {
        this.cleaning = null;
      });
      return this.cleaning;
    }

    async cleanNow() {
      const { name } = this.scan;
      const edition = this.edition;
      this.cleanButton.disabled = true;
      this.root.dataset.clean = "working";
      const slow = {
        video: " Videos can take a while.",
        recording: " Recordings can take a while.",
      }[this.scan.kind] || "";
      this.outcome.replaceChildren(el("p", {}, `Cleaning…${slow}`));
      announce(`Cleaning ${name}…${slow}`);
      let answer = null;
      try {
        answer = await (await api("/api/clean", { json: this.edits() })).json();
        if (answer.verified === "leak") {
          throw new ApiError(422, "the check found a face or metadata still there", answer);
        }
      } catch (err) {
        answer = null;
        this.root.dataset.clean = "error";
        this.outcome.replaceChildren();
        const why = explain(err, "clean");
        const message = `${name} was not cleaned. ${why} Nothing was downloaded.`;
        this.showError(message, this.outcome);
        announce(message);
      } finally {
        this.cleanButton.disabled = false;
      }
      // Edits made while it was cleaning are not in this file: it is not "the" cleaned one.
      if (answer && edition === this.edition) {
        this.cleaned = answer;
        this.root.dataset.clean = "done";
        this.showOutcome(answer);
      }
      return answer;
    }

    showOutcome(r) {
      const recording = this.scan.kind === "recording";
      const verdicts = recording
        ? {
            protected: "Checked: no metadata left, and the new voice does not sound like the " +
              "speaker.",
            unconfirmed: "Checked: no metadata left, but the check could not judge the voice.",
          }
        : {
            protected: "Checked: no face or metadata left.",
            unconfirmed: "Checked: no face or metadata left that the check can see.",
          };
      const verdict =
        verdicts[r.verified] ??
        (recording && r.verified === "not checked" && r.result.voice?.action !== "anonymized"
          ? "Not checked independently: there was no new voice to check."
          : "Not checked independently: verification is off or not installed.");
      // Unconfirmed: the check is blind where these faces are; a missed one would be too. With
      // no such face, it is the voice the check could not judge: say why.
      const voiceCheck = r.result.verification?.voices;
      let caveat = "";
      if (r.verified === "unconfirmed" && r.unjudged > 0) {
        caveat =
          `But ${plural(r.unjudged, "hidden face is", "hidden faces are")} too small or ` +
          "too turned away for the check to see, so a face like " +
          `${r.unjudged === 1 ? "it" : "them"} that veil missed would go unnoticed. ` +
          "Look at the picture before you share it.";
      } else if (r.verified === "unconfirmed" && voiceCheck) {
        const why = voiceCheck.replace(/[.]$/, "");
        caveat = `The voice check says: ${why}. Listen before you share it.`;
      }
      // One group per kind of thing: "1 face hidden, 1 kept visible; 2 plates hidden, …".
      const counts = recording ? [] : this.hiddenCounts(r);
      const voices = {
        anonymized: "speech given a new voice",
        kept: "voices kept as they are",
        none: "no speech found",
      };
      if (r.result.voice) counts.push(voices[r.result.voice.action]);
      const said = counts.join("; ");
      const summary = said ? `${said[0].toUpperCase()}${said.slice(1)}` : "Done";
      const removed = r.metadata_removed.length
        ? `Metadata removed: ${r.metadata_removed.join(", ")}.`
        : "No metadata needed removing.";
      const link = el("a", { href: r.download, download: r.name, class: "download" });
      link.textContent = `Download ${r.name} again`;
      const lines = [
        el("p", { class: `verdict ${VERDICT_CLASS[r.verified] ?? "unchecked"}` }, verdict),
        el("p", {}, `${summary}. ${removed}`),
        el("p", {}, link),
      ];
      if (r.status === "unchanged") {
        lines.splice(2, 0, el("p", { class: "hint" }, "Nothing needed changing in this file."));
      }
      if (caveat) lines.splice(1, 0, el("p", { class: "caveat" }, caveat));
      if (r.result.voice && (recording || r.result.voice.action !== "none")) {
        // Hear what was written: the words should stay, the speaker should not.
        const sound = el("audio", { controls: true, preload: "none", src: r.download });
        sound.setAttribute("aria-label", `The sound of the cleaned ${r.name}`);
        lines.push(el("p", { class: "listen" }, "Listen to the cleaned sound: ", sound));
      }
      this.outcome.replaceChildren(...lines);
      announce(`${r.name} cleaned. ${summary}. ${verdict} ${caveat}`.trim());
      if (!this.scan.editable && r.cleaned) {
        // Videos have no live preview: show a frame of what was actually written.
        this.preview.src = `${r.cleaned}?v=${Date.now()}`;
        this.preview.alt = `A frame of the cleaned ${r.name}`;
        this.preview.hidden = false;
        this.previewNote.textContent = "A frame of the cleaned file.";
      }
    }

    /** What a clean hid and left visible, by kind; plates and text where looked for. The
     * plates and text kept are this card's (`cleaned` is only kept while it matches them). */
    hiddenCounts(r) {
      const editable = this.scan.editable;
      const faces = [`${plural(r.faces_obscured, "face")} hidden`];
      if (editable) faces.push(`${r.kept} kept visible`);
      const groups = [faces.join(", ")];
      for (const kind of MARK_KINDS.filter((k) => this.lookedFor(k))) {
        const w = MARK_WORDS[kind];
        const hidden = kind === "plate" ? r.plates_obscured : r.text_obscured;
        const group = [`${plural(hidden, w.one, w.many)} hidden`];
        const found = this.marksOf(kind);
        if (editable && found.length) {
          group.push(`${found.filter((m) => this.keepMarks.has(m.index)).length} kept visible`);
        }
        groups.push(group.join(", "));
      }
      if (editable) groups.push(`${plural(r.added, "extra area")} hidden`);
      return groups;
    }

    async cleanAndDownload() {
      const answer = await this.clean();
      if (answer) download(answer.download, answer.name);
    }

    async remove() {
      this.removed = true;
      cards.delete(this);
      clearTimeout(this.previewTimer);
      this.previewAbort?.abort();
      if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
      this.voiceAbort?.abort();
      if (this.voiceUrl) URL.revokeObjectURL(this.voiceUrl);
      // Focus moves to the next card (or the file picker) so keyboard users are not lost.
      const next = this.root.nextElementSibling || this.root.previousElementSibling;
      this.root.remove();
      (next ? next.querySelector("button") : fileInput).focus();
      announce(`${this.file.name} removed.`);
      updateZip();
      if (this.scan) await this.discard();
    }

    /** Ask the server to delete the upload now rather than when idle. */
    async discard() {
      try {
        await api("/api/discard", { json: { id: this.scan.id } });
      } catch {
        // Already gone (idle timeout): nothing to delete.
      }
    }
  }

  // -- page-wide ---------------------------------------------------------------------------

  /** Seconds as m:ss. */
  function clock(seconds) {
    const s = Math.floor(seconds);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function clamp(v, lo, hi) {
    return Math.min(Math.max(v, lo), hi);
  }

  function boxFrom([ax, ay], [bx, by]) {
    return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
  }

  function setRect(rect, [x1, y1, x2, y2]) {
    rect.setAttribute("x", x1);
    rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1);
    rect.setAttribute("height", y2 - y1);
  }

  /** Swap an <img> to `url` once it has decoded, so the old picture stays until then. */
  function showImage(img, url) {
    return new Promise((resolve) => {
      const probe = new Image();
      probe.onload = probe.onerror = () => {
        img.src = url;
        resolve();
      };
      probe.src = url;
    });
  }

  function scanned() {
    return [...cards].filter((c) => c.scan);
  }

  function updateZip() {
    zipButton.disabled = scanned().length === 0;
    emptyEl.hidden = cards.size > 0;
  }

  function addFiles(files) {
    for (const file of files) {
      const card = new Card(file);
      cards.add(card);
      scanQueue = scanQueue.then(() => card.upload());
    }
    updateZip();
    if (files.length) announce(`Scanning ${plural(files.length, "file")}…`);
  }

  async function downloadAll() {
    const review = document.querySelector(".review-head");
    zipButton.disabled = true;
    review.querySelector(".alert")?.remove();
    try {
      for (const card of scanned()) await card.clean(); // one at a time, like the scans
      const ids = scanned()
        .filter((c) => c.cleaned)
        .map((c) => c.scan.id);
      if (!ids.length) {
        announce("Nothing to put in a zip: no file could be cleaned.");
        return;
      }
      const blob = await (await api("/api/zip", { json: { ids } })).blob();
      const url = URL.createObjectURL(blob);
      download(url, "veil-cleaned.zip");
      // Revoking at once can cancel the download in some browsers; a minute is plenty.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      const skipped = scanned().length - ids.length;
      const left = skipped ? ` Left out, as not cleaned: ${plural(skipped, "file")}.` : "";
      announce(`Zip of ${plural(ids.length, "cleaned file")} downloaded.${left}`);
    } catch (err) {
      showAlert(`The zip could not be made: ${explain(err)}`, review);
    } finally {
      updateZip();
    }
  }

  async function start() {
    fileInput.addEventListener("change", () => {
      addFiles([...fileInput.files]);
      fileInput.value = ""; // choosing the same file again must fire "change" again
    });
    zipButton.addEventListener("click", downloadAll);

    // Dropping anywhere adds the files: a drop outside the zone must not make the browser
    // navigate to the photo and lose the review.
    const zone = document.getElementById("dropzone");
    document.addEventListener("dragover", (e) => {
      e.preventDefault();
      zone.classList.add("dragging");
    });
    document.addEventListener("dragleave", (e) => {
      if (!e.relatedTarget) zone.classList.remove("dragging");
    });
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      if (e.dataTransfer?.files.length) addFiles([...e.dataTransfer.files]);
    });

    const accepted = document.getElementById("accepted");
    const asked = api("/api/config").then((answer) => answer.json());
    // Scans wait for the answer: a card offers the methods it names. Nothing can be queued
    // before this line, as no event is handled until the first await below.
    scanQueue = asked.catch(() => {});
    try {
      config = await asked;
      fileInput.accept = config.extensions.join(",");
      const mb = Math.floor(config.max_upload_bytes / 2 ** 20); // as the server counts
      accepted.textContent =
        `Accepted: ${config.extensions.join(" ")} — up to ${mb} MB each. ` +
        (config.verify
          ? "Each cleaned file is checked independently before you can download it."
          : "");
      document.getElementById("version").textContent = `veil ${config.version}`;
    } catch (err) {
      accepted.textContent = "";
      showAlert(explain(err), accepted.parentNode);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();
