"""A small real labelled set of English sentences for taught text labels: three topics, twenty sentences each,
written as people write them (news lines, recipe steps, forecasts), none built from a label's own words.

Tests teach with the first few of each topic and check the rest, which the classifier never saw; with three
labels, chance is one in three, and `beats_chance` asks for more right answers than luck gives once in a million.
"""

from __future__ import annotations

import math

TOPICS: dict[str, list[str]] = {
    "sport": [
        "The home side equalised in the ninetieth minute and went on to win on penalties.",
        "She broke the national record in the 400 metres at the indoor championships.",
        "The quarterback threw three touchdowns before halftime.",
        "Our club signed a new striker on a two-year contract.",
        "The cyclists climbed the final mountain pass in thick fog.",
        "He served twenty aces and won the final in straight sets.",
        "The referee sent off their captain for a second yellow card.",
        "After the marathon the runners queued for water and foil blankets.",
        "The batsman was caught at slip for a duck.",
        "Fans invaded the pitch when the final whistle blew.",
        "The coach was sacked after five defeats in a row.",
        "She swam the butterfly leg of the relay and touched first.",
        "The goalkeeper tipped the free kick over the bar.",
        "Tickets for the derby sold out within an hour.",
        "The boxer was knocked down twice in the third round.",
        "They finished the season two points clear at the top of the league.",
        "The sprinter was disqualified for a false start.",
        "Our rowing crew took bronze by half a length.",
        "The midfielder tore a hamstring in training and will miss the cup tie.",
        "The golfer sank a long putt on the eighteenth to force a play-off.",
    ],
    "cooking": [
        "Whisk the eggs with the sugar until pale and fluffy.",
        "Fry the onions gently in butter until they are soft and golden.",
        "Season the lamb with salt, garlic and rosemary before roasting it.",
        "Knead the dough for ten minutes, then leave it to rise in a warm place.",
        "Simmer the tomato sauce for half an hour and stir it now and then.",
        "Preheat the oven to 180 degrees and grease a round tin.",
        "Drain the pasta, keeping a cup of the cooking water for the sauce.",
        "Chop the coriander finely and scatter it over the curry.",
        "Let the steak rest for five minutes before slicing it.",
        "Fold the flour into the batter with a metal spoon.",
        "Marinate the chicken overnight in yoghurt and spices.",
        "Blanch the green beans and plunge them into iced water.",
        "Grate the parmesan and stir it into the risotto off the heat.",
        "Roll out the pastry thinly and line the pie dish.",
        "Toast the cumin seeds in a dry pan until fragrant.",
        "Reduce the stock by half to concentrate the flavour.",
        "Peel and dice the potatoes, then boil them until tender.",
        "Brush the bread with olive oil and grill it until crisp.",
        "Squeeze half a lemon over the fish just before serving.",
        "Cream the butter and sugar, then beat in the vanilla.",
    ],
    "weather": [
        "Heavy rain is expected overnight, with flooding possible in low-lying areas.",
        "Tomorrow will start frosty, but sunny spells will follow by midday.",
        "A yellow warning for strong winds covers the whole coast until Sunday.",
        "Temperatures will climb to 34 degrees in the south this afternoon.",
        "Thick fog is slowing traffic on the motorway this morning.",
        "Snow showers will spread from the north, settling on high ground.",
        "The humidity makes it feel much hotter than the thermometer says.",
        "Thunderstorms could bring hail and lightning later in the evening.",
        "Clear skies tonight mean a cold start with a touch of ground frost.",
        "The drought has left reservoirs at their lowest level in decades.",
        "Gusts of up to seventy miles an hour brought down trees across the county.",
        "Expect a grey, drizzly day with a light breeze from the west.",
        "The heatwave is set to break at the weekend with cooler air arriving.",
        "Black ice made the roads treacherous after last night's freeze.",
        "The hurricane is forecast to make landfall late on Thursday.",
        "Showers will clear by the afternoon, leaving bright but chilly conditions.",
        "A high pressure system will keep things dry and settled all week.",
        "Sleet turned to snow as the temperature dropped below zero.",
        "Morning mist will lift to give a warm and sunny afternoon.",
        "Forecasters say this has been the wettest autumn on record.",
    ],
}


def split(per_label: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) as (text, label) pairs: the first `per_label` of each topic, and the rest."""
    train = [(text, label) for label, texts in TOPICS.items() for text in texts[:per_label]]
    test = [(text, label) for label, texts in TOPICS.items() for text in texts[per_label:]]
    return train, test


def least_right_beyond_luck(n: int, chance: float, odds: float = 1e-6) -> int:
    """The smallest k with P(at least k right of n by guessing) < odds (a binomial tail)."""
    for k in range(n + 1):
        tail = sum(math.comb(n, i) * chance**i * (1 - chance) ** (n - i) for i in range(k, n + 1))
        if tail < odds:
            return k
    return n + 1
