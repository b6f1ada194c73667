import datetime as dt

import pytest

from node.errors import InvalidIdNumber
from node.security.idnumbers import gb11643_check_char, mask_id_number, normalise_id_number
from tests.conftest import valid_id


def test_published_example_checksum() -> None:
    # GB 11643-1999 worked example: 11010519491231002 -> check character X
    assert gb11643_check_char("11010519491231002") == "X"


def test_lowercase_x_is_normalised() -> None:
    assert normalise_id_number("resident_id", "11010519491231002x") == "11010519491231002X"


def test_fifteen_digit_number_is_upgraded() -> None:
    upgraded = normalise_id_number("resident_id", "110105491231002")
    assert upgraded == "11010519491231002X"


@pytest.mark.parametrize(
    "number, reason",
    [
        ("110105194912310021", "check character"),
        ("1101051949123100", "18 characters"),
        ("11010519491331002" + gb11643_check_char("11010519491331002"), "not a real date"),
        ("11010518891231002" + gb11643_check_char("11010518891231002"), "plausible"),
        ("", "empty"),
    ],
)
def test_bad_resident_ids_are_refused(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalise_id_number("resident_id", number)
    assert reason in err.value.message
    if number:
        assert number not in err.value.message  # the error can be logged safely


def test_future_birth_date_refused() -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    first = "310101" + tomorrow.strftime("%Y%m%d") + "123"
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("resident_id", first + gb11643_check_char(first))


def test_other_document_types() -> None:
    assert normalise_id_number("hk_macau_permit", "h12345678") == "H12345678"
    assert normalise_id_number("passport", "e1234567") == "E1234567"
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("taiwan_permit", "12AB")
    with pytest.raises(InvalidIdNumber) as err:
        normalise_id_number("driving_licence", "123")
    assert err.value.code == "invalid_id_type"
    hmt = valid_id(region="810000")
    assert normalise_id_number("hmt_residence_permit", hmt) == hmt
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("hmt_residence_permit", valid_id())


def test_mask() -> None:
    assert mask_id_number("31010119900307123X") == "310101********123X"
    assert mask_id_number("H12345678") == "H1*****78"


# -- only ASCII digits: full-width forms are folded to ASCII, every other script is refused (issue 11.1) ------

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


def test_full_width_digits_letters_and_spaces_fold_to_the_ascii_number() -> None:
    number = valid_id(serial="002")
    first = "11010519491231002"
    assert normalise_id_number("resident_id", number.translate(FULL_WIDTH)) == number
    assert normalise_id_number("resident_id", (first + "x").translate(FULL_WIDTH)) == first + "X"
    spaced = "\u3000" + number[:6] + "\u3000" + number[6:14] + " " + number[14:] + "\u3000"
    assert normalise_id_number("resident_id", spaced) == number
    assert normalise_id_number("hk_macau_permit", "ｈ１２３４５６７８") == "H12345678"
    assert normalise_id_number("passport", "ｅ１２３４５６７") == "E1234567"


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda n: n.translate(ARABIC_INDIC), id="arabic-indic"),
        pytest.param(lambda n: n.translate(DEVANAGARI), id="devanagari"),
        pytest.param(lambda n: n[:6] + "".join(chr(0x1D7CE + int(c)) for c in n[6:10]) + n[10:], id="math-bold"),
        pytest.param(lambda n: n[:17] + "\u2169", id="roman-numeral-ten"),  # 'Ⅹ' is not 'X'
        pytest.param(lambda n: n[:-1] + "\u00b2" if n[-1] == "2" else "\u00b2" + n[1:], id="superscript"),
        pytest.param(lambda n: n[:5] + "\u2460" + n[6:], id="circled-digit"),
        pytest.param(lambda n: n[:8] + "\u00a0" + n[8:], id="no-break-space-inside"),
    ],
)
@pytest.mark.parametrize("number", ["11010519491231002X", valid_id(serial="002")])
def test_other_scripts_and_compatibility_forms_are_refused(spelling, number: str) -> None:
    with pytest.raises(InvalidIdNumber) as err:
        normalise_id_number("resident_id", spelling(number))
    assert err.value.code == "invalid_id_number"


@pytest.mark.parametrize("id_type", ["passport", "hk_macau_permit", "taiwan_permit", "foreign_permanent_residence"])
def test_no_non_ascii_letter_upper_cases_into_a_valid_number(id_type: str) -> None:
    # 'ı'.upper() == 'I' and 'ſ'.upper() == 'S': upper-casing before validating would make two spellings
    tricky = {"passport": "E123ı567", "hk_macau_permit": "H1234567٨", "taiwan_permit": "1234567٨",
              "foreign_permanent_residence": "ſTA110105490101"}
    with pytest.raises(InvalidIdNumber):
        normalise_id_number(id_type, tricky[id_type])


def test_fifteen_digit_numbers_must_be_ascii_too() -> None:
    with pytest.raises(InvalidIdNumber):
        normalise_id_number("resident_id", "110105491231002".translate(ARABIC_INDIC))
    assert normalise_id_number("resident_id", "110105491231002".translate(FULL_WIDTH)) == "11010519491231002X"
