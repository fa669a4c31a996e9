"""`mambaout serve` as a person uses it: headless chromium (Debian's package) driven by Playwright against the
app launched in this process on a free localhost port; then 20 concurrent requests through gradio_client.

The tests run in file order on one page. A screenshot of each view goes to a temporary folder (printed), or
with MAMBAOUT_SERVE_SCREENSHOTS=DIR to DIR: then the app uses the real Fashion-MNIST samples, untrained
models at 64x64 and the checkpoints in MAMBAOUT_SERVE_CHECKPOINTS (os.pathsep-separated), as for docs/serve/.
"""

import io
import os
import socket
import urllib.error
import urllib.request

import pytest
import torch
from PIL import Image

from mambaout.registry import create_model
from mambaout.weights import save_safetensors

pytest.importorskip("gradio")
DOCS = os.environ.get("MAMBAOUT_SERVE_SCREENSHOTS")
TIMEOUT = 60_000  # ms; a loaded 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory, fashion_standin):
    from mambaout.serve.app import Options, build, launch

    threads = torch.get_num_threads()
    if DOCS:
        ckpts = [p for p in os.environ.get("MAMBAOUT_SERVE_CHECKPOINTS", "").split(os.pathsep) if p]
        options = Options(checkpoints=ckpts, discover_root=None, img_size=64, samples=8)
    else:  # a 'trained' checkpoint found under the working folder, tiny untrained models, stand-in samples
        root = tmp_path_factory.mktemp("cwd")
        os.makedirs(root / "runs" / "tiny")
        torch.manual_seed(3)
        model = create_model("mambaout_test", num_classes=10, in_chans=1)
        meta = dict(model="mambaout_test", num_classes=10, in_chans=1, img_size=32)
        save_safetensors(model, str(root / "runs" / "tiny" / "model.safetensors"), meta)
        data = fashion_standin(str(tmp_path_factory.mktemp("fashion")), n_train=8, n_test=20)
        options = Options(discover_root=str(root), img_size=32, samples=3, data_root=data, zoo_pattern="mamba*_femto")
    page = build(options)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(page, port=port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/", page.mambaout
    page.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = DOCS or str(tmp_path_factory.mktemp("serve-screenshots"))
    os.makedirs(folder, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def page(browser, served):
    url, _ = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    pg.outside = []  # requests that leave this machine: there must be none
    pg.on(
        "request",
        lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else pg.outside.append(r.url),
    )
    pg.goto(url)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def real_png(served, tmp_path_factory):
    """The first sample image, enlarged to 112x112 RGB, as a PNG file: what a user would upload."""
    _, demo = served
    image = next(iter(demo.samples.values())).convert("RGB").resize((112, 112), Image.BICUBIC)
    path = tmp_path_factory.mktemp("upload") / "upload.png"
    image.save(path)
    return path


def wait_text(pg, selector: str, text: str) -> str:
    pg.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t); }",
        arg=[selector, text],
    )
    return pg.locator(selector).inner_text()


def top5(pg, selector: str) -> list[tuple[str, str]]:
    """The (class, percentage) rows of a gr.Label: its text is 'top-5', the winner, then name / value lines."""
    lines = [s.strip() for s in pg.locator(selector).inner_text().splitlines() if s.strip()]
    rows = lines[2:]
    return list(zip(rows[0::2], rows[1::2]))


def choose(pg, selector: str, option: str) -> None:
    """Pick ``option`` of a gr.Dropdown as a person does: open it, type to filter, click the option."""
    box = pg.locator(f"{selector} input")
    box.click()
    box.fill(option)
    options = pg.locator(f"#{box.get_attribute('aria-controls')}")  # this dropdown's list, not another's
    options.get_by_role("option", name=option, exact=True).click()
    assert box.input_value() == option


def upload(pg, path) -> None:
    """Put ``path`` in the upload box (clearing the file shown there first, as a person would)."""
    shown = pg.locator("#upload").get_by_role("button", name="Clear")
    if shown.count():
        shown.first.click()
    pg.locator("#upload input[type=file]").set_input_files(str(path))


def test_page_loads_offline(page, shots):
    page.wait_for_selector("#intro")
    assert "MambaOut" in page.title() + page.locator("#intro").inner_text()
    for tab in ("Classify", "Look inside", "Long or short?"):
        page.get_by_role("tab", name=tab).wait_for()
    page.screenshot(path=os.path.join(shots, "start.png"))
    assert page.outside == []  # no fonts, analytics or scripts from the internet


def test_upload_classify_and_read_the_top5(page, served, real_png, shots):
    _, demo = served
    upload(page, real_png)
    assert "PNG, 112x112" in wait_text(page, "#input-status", "PNG")
    page.click("#classify-btn")
    wait_text(page, "#info-b", " ms")
    info_a = page.locator("#info-a").inner_text()
    rows = top5(page, "#top5-a")
    assert len(rows) == 5 and all(p.endswith("%") for _, p in rows)
    # the page shows what the model computes for this file
    from mambaout.serve.classify import classify
    from mambaout.serve.images import decode_upload

    label = page.locator("#model-a input").input_value()
    expected = classify(demo.bank.get(label), decode_upload(real_png.read_bytes()).image)
    assert rows[0][0] == next(iter(expected.top)) and expected.model in info_a
    assert [n for n, _ in rows] == list(expected.top)
    assert page.locator("#top5-b").inner_text().count("%") == 5
    page.screenshot(path=os.path.join(shots, "classify.png"), full_page=True)


def test_switch_model(page):
    choose(page, "#model-a", "mamba_femto (untrained)")
    choose(page, "#model-b", "(none)")
    page.click("#classify-btn")
    info = wait_text(page, "#info-a", "mamba_femto ")
    assert "untrained" in info and page.locator("#info-b").inner_text().strip() == ""


def test_look_inside(page, shots, served):
    page.get_by_role("tab", name="Look inside").click()
    choose(page, "#look-left", "mambaout_femto (untrained)")
    choose(page, "#look-right", "mamba_femto (untrained)")
    page.click("#look-btn")
    assert "conv kernel's footprint" in wait_text(page, "#look-info-left", "Query pixel")
    assert "hidden attention" in wait_text(page, "#look-info-right", "Query pixel")
    assert page.locator("#look-status").inner_text().strip() == ""
    page.screenshot(path=os.path.join(shots, "look_inside.png"), full_page=True)
    # a click on a mixing map moves the query pixel there (the map is the model's input, enlarged): the centre
    # of input pixel (py, px) as a fraction of the map's side
    size = served[1].o.img_size
    py, px = int(0.3 * size), int(0.68 * size)
    img = page.locator("#mix-left img")
    box = img.bounding_box()
    img.click(position={"x": box["width"] * (px + 0.5) / size, "y": box["height"] * (py + 0.5) / size})
    wait_text(page, "#look-info-left", f"Query pixel ({py}, {px})")
    wait_text(page, "#look-info-right", f"Query pixel ({py}, {px})")


def test_long_or_short(page, shots):
    page.get_by_role("tab", name="Long or short?").click()
    choose(page, "#calc-model-choice", "mambaout_femto")
    page.click("#calc-btn")
    table = wait_text(page, "#calc-table", "verdict")
    assert "196" in table and "short" in table  # ImageNet at 224, patch 16, ViT-S: L = 196 < 6D = 2304
    stages = wait_text(page, "#calc-model", "mambaout_femto")
    assert "3136" in stages and "long" in stages  # its stage 1: 56x56 tokens of width 48 (6D = 288)
    page.click("#zoo-btn")
    assert "mambaout_femto" in wait_text(page, "#zoo-table", "paper top-1")
    page.screenshot(path=os.path.join(shots, "long_or_short.png"), full_page=True)


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(page, png_header_only, real_png, shots, tmp_path):
    page.get_by_role("tab", name="Classify").click()
    bad = {
        "notes.txt": (b"just some text, not a picture\n" * 20, "not an image"),
        "bomb.png": (png_header_only(100_000, 100_000), "too many pixels"),
        "truncated.png": (real_png.read_bytes()[:-200], "truncated"),
        "big.png": (png_header_only(5000, 5000), "the limit is"),
    }
    for name, (data, message) in bad.items():
        path = tmp_path / name
        path.write_bytes(data)
        upload(page, path)
        status = wait_text(page, "#input-status", message)
        assert "Refused" in status and "Traceback" not in page.content(), name
        if name == "bomb.png":
            page.screenshot(path=os.path.join(shots, "refused.png"))
    page.click("#classify-btn")  # the bad upload is still selected: the view refuses it too
    assert "5000x5000" in wait_text(page, "#classify-status", "Refused")
    upload(page, real_png)  # and a good one works again
    wait_text(page, "#input-status", "PNG, 112x112")


def test_twenty_concurrent_classifications(served, real_png):
    from gradio_client import Client, handle_file

    url, demo = served
    client = Client(url, verbose=False)
    label = demo.bank.labels[0]
    jobs = [
        client.submit(handle_file(str(real_png)), None, label, "(none)", "eigencam", api_name="/classify")
        for _ in range(20)
    ]
    results = [job.result(timeout=120) for job in jobs]
    assert len(results) == 20
    for r in results:
        assert r[-1] == "" and len(r[0]["confidences"]) == 5
    assert len({r[0]["label"] for r in results}) == 1  # the same answer every time
    # still healthy: the page and a request after the burst
    assert urllib.request.urlopen(url, timeout=30).status == 200
    again = client.predict(handle_file(str(real_png)), None, label, "(none)", "eigencam", api_name="/classify")
    assert again[0]["label"] == results[0][0]["label"]


def test_upload_over_the_size_limit_is_refused_by_the_server(served):
    url, demo = served
    body = io.BytesIO()
    boundary = "mambaoutboundary"
    payload = os.urandom(demo.o.max_bytes + 1024)
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n\r\n'.encode())
    body.write(payload + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        url + "gradio_api/upload",
        data=body.getvalue(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 413


def test_a_path_sent_by_a_client_is_never_opened(served):
    """A FileData naming a server file (not one the client uploaded) is refused by Gradio before the handler
    runs: had it run, the guarded handler would have answered 'complete' with a refusal line."""
    import json

    url, demo = served
    call = url + "gradio_api/call/classify"
    for path in ("/etc/passwd", os.path.abspath(__file__)):
        data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, None, demo.bank.labels[0], "(none)", "eigencam"]
        body = json.dumps({"data": data}).encode()
        request = urllib.request.Request(call, data=body, headers={"Content-Type": "application/json"})
        event = json.load(urllib.request.urlopen(request, timeout=30))["event_id"]
        answer = urllib.request.urlopen(f"{call}/{event}", timeout=60).read().decode()
        assert answer.startswith("event: error") and "root:" not in answer, answer[:200]
