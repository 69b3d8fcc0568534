// Progress of the page's generation jobs: polls /internal/progress, draws the bar (percent, ETA,
// queue position) and the live preview, and shows the percent in the window title. The job ids
// are kept in localStorage so that a reloaded page reattaches to a running job.
(function () {
  const pollers = {};
  const baseTitle = () => document.title.replace(/^\[[^\]]*\]\s*/, "");

  function box(tab) {
    return document.getElementById(tab + "_progress_box");
  }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    return s >= 60 ? ` ETA: ${Math.floor(s / 60)}m ${s % 60}s` : ` ETA: ${s}s`;
  }

  function render(tab, state, data) {
    const element = box(tab);
    if (!element) return;
    if (!data.known || data.done) return;
    const percent = Math.floor((data.progress || 0) * 100);
    const text = data.queued ? `In queue: ${data.queued}` : `${percent}%${formatEta(data.eta)}`;
    let bar = element.querySelector(".sd-progress-bar");
    if (!bar) {
      element.innerHTML = '<div class="sd-progress-bar"><div class="sd-progress-fill"></div>' +
        '<span class="sd-progress-text"></span></div><img class="sd-live-preview" alt="live preview" hidden>';
      bar = element.querySelector(".sd-progress-bar");
    }
    bar.querySelector(".sd-progress-fill").style.width = (data.queued ? 0 : percent) + "%";
    bar.querySelector(".sd-progress-text").textContent = text;
    if (data.preview) {
      const img = element.querySelector(".sd-live-preview");
      img.src = data.preview;
      img.hidden = false;
      state.previewId = data.preview_id;
    }
    document.title = data.title === false ? baseTitle() : `[${data.queued ? "queued" : percent + "%"}] ${baseTitle()}`;
  }

  async function poll(tab) {
    const state = pollers[tab];
    if (!state) return;
    try {
      const url = `internal/progress?id=${encodeURIComponent(state.ids)}&preview=${encodeURIComponent(state.previewId || "")}`;
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        state.delay = data.refresh_ms || state.delay;
        render(tab, state, data);
      }
    } catch (error) {
      // The server may be restarting; keep polling.
    }
    if (pollers[tab] === state) state.timer = setTimeout(() => poll(tab), state.delay);
  }

  function start(tab, ids) {
    stop(tab);
    if (!ids) return;
    pollers[tab] = { ids: ids, delay: 1000, previewId: "" };
    poll(tab);
  }

  function stop(tab) {
    const state = pollers[tab];
    if (state && state.timer) clearTimeout(state.timer);
    delete pollers[tab];
  }

  window.sdTrackJobs = function (tab, ids) {
    if (ids) {
      localStorage.setItem("sd-jobs-" + tab, ids);
      start(tab, ids);
    }
    return ids;
  };

  window.sdRestoreJobs = function (tab) {
    const ids = localStorage.getItem("sd-jobs-" + tab) || "";
    if (ids) start(tab, ids);
    return ids;
  };

  window.sdJobsDone = function (tab) {
    stop(tab);
    localStorage.removeItem("sd-jobs-" + tab);
    const element = box(tab);
    if (element) element.innerHTML = "";
    document.title = baseTitle();
  };

  // Ctrl+Enter generates, Alt+Enter skips, Esc interrupts (A1111's keys) in the prompt boxes.
  document.addEventListener("keydown", function (event) {
    const area = event.target.closest && event.target.closest("[id$='_prompt'], [id$='_neg_prompt']");
    if (!area) return;
    const tab = area.id.startsWith("img2img") ? "img2img" : "txt2img";
    const button = (event.ctrlKey || event.metaKey) && event.key === "Enter" ? "generate"
      : event.altKey && event.key === "Enter" ? "skip" : event.key === "Escape" ? "interrupt" : null;
    if (!button) return;
    const element = document.getElementById(`${tab}_${button}`);
    if (element) {
      event.preventDefault();
      element.click();
    }
  });
})();
