import pytest

from mambaout.errors import ConfigError
from mambaout.utils.paths import check_output_file


def test_check_output_file(tmp_path):
    (tmp_path / "f").write_text("x")
    check_output_file(str(tmp_path / "new" / "out.png"), "--plot", (".png",))  # its folder is created later
    check_output_file(str(tmp_path / "f"), "-o")  # an existing file is replaced
    with pytest.raises(ConfigError, match=r"^-o: '.*' is a folder; name the file to write$"):
        check_output_file(str(tmp_path), "-o")
    with pytest.raises(ConfigError, match=r"^-o: '.*/f' is a file, not a folder$"):
        check_output_file(str(tmp_path / "f" / "x.onnx"), "-o")
    with pytest.raises(ConfigError, match=r"^--plot: 'a\.txt' must end in \.png or \.svg$"):
        check_output_file("a.txt", "--plot", (".png", ".svg"))
