"""Screenshots of a run report in headless Chromium: the top of the page, the plots and the samples sections.

    python reports/report/screenshots.py RUN/report.html reports/report/

Needs chromium, chromium-driver (apt) and selenium (the dev extras).
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

page, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = shutil.which("chromium")
with tempfile.TemporaryDirectory() as profile:
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--window-size=1360,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.as_uri())
        time.sleep(2)
        driver.save_screenshot(str(out / "top.png"))
        driver.set_window_size(1360, driver.execute_script("return document.documentElement.scrollHeight"))
        time.sleep(1)
        for section in ("plots", "samples"):
            driver.find_element(By.ID, section).screenshot(str(out / f"{section}.png"))
    finally:
        driver.quit()
