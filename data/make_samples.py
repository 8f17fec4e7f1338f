"""Build dupq's bundled sample data from the hand-written question groups below (run from the repo root).

    python data/make_samples.py

Every question here was written for dupq (Apache-2.0, like the project). The groups are organised in
*units*: one theme, one or more clusters of true paraphrases (same intent, same answer), a few
questions on the same theme with a different intent (hard negatives), a near miss that shares most
words with a cluster member but asks something else (the hardest negatives), and one off-topic
question (an easy negative). Pairs are drawn only inside a unit, so the question graph falls into ~40
components and a component-disjoint split of ``sample_pairs.tsv`` is meaningful. The output is deterministic.
"""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# fmt: off
UNITS: list[dict] = [
    {"clusters": [
        ["How do I reverse a list in Python?",
         "What's the easiest way to reverse a python list?",
         "how can i reverse the order of the items in a list in python"],
        ["How do I sort a list of dictionaries by a value in Python?",
         "Python: how to sort a list of dicts by one of the keys?"]],
     "others": ["How do I remove duplicates from a list in Python?",
                "What is the difference between a list and a tuple in Python?"],
     "easy": "Which is the best beach in Goa for a quiet holiday?"},
    {"clusters": [
        ["How do I undo the last commit in git?",
         "How can I revert my most recent git commit that I haven't pushed yet?",
         "Git: how to undo last local commit?",
         "what command undoes the last commit in git if it is not pushed"],
        ["How do I delete a remote branch in Git?",
         "How to remove a branch from the remote repository on GitHub using git?"]],
     "others": ["How do I rename a local branch in git?",
                "What is the difference between git merge and git rebase?"],
     "easy": "How long should I boil an egg for a runny yolk?"},
    {"clusters": [
        ["What is the difference between let, const and var in JavaScript?",
         "JavaScript: when should I use var vs let vs const?",
         "How are var, let and const different in JS?"],
        ["How do I check if an array is empty in JavaScript?",
         "What is the best way to test whether a JS array has no elements?"]],
     "others": ["How do I copy an array in JavaScript without changing the original?",
                "What does the === operator do in JavaScript?"],
     "easy": "Can dogs eat grapes?"},
    {"clusters": [
        ["What is the difference between an INNER JOIN and a LEFT JOIN in SQL?",
         "SQL: inner join vs left outer join, what's the difference?",
         "When do I use LEFT JOIN instead of INNER JOIN?"],
        ["How do I find duplicate rows in a SQL table?",
         "What SQL query shows rows that appear more than once in a table?"]],
     "others": ["How do I delete duplicate rows in SQL but keep one?",
                "What is a foreign key in a relational database?"],
     "easy": "What should I pack for a week in Iceland in winter?"},
    {"clusters": [
        ["How do I find which process is using a port on Linux?",
         "Linux: how can I see what program is listening on port 8080?",
         "what command shows which process has a port open in linux"],
        ["How do I make a shell script executable?",
         "How to give a .sh file permission to run in Linux?"]],
     "others": ["How do I kill a process that won't stop in Linux?",
                "How do I check free disk space from the Linux terminal?"],
     "easy": "Why do cats purr?"},
    {"clusters": [
        ["What are the early signs of type 2 diabetes?",
         "What symptoms might mean I have type 2 diabetes?",
         "How do I know if I am developing type II diabetes?"],
        ["Can type 2 diabetes be reversed with diet?",
         "Is it possible to reverse type-2 diabetes by changing what I eat?"]],
     "others": ["What is the difference between type 1 and type 2 diabetes?",
                "What is a normal blood sugar level after eating?"],
     "easy": "How do I change a flat tyre on a bicycle?"},
    {"clusters": [
        ["How many hours of sleep does an adult need?",
         "How much sleep should a grown-up get every night?",
         "what is the recommended amount of sleep for adults"],
        ["Why do I wake up at 3am every night?",
         "What causes waking up at the same time (around 3 a.m.) every night?"]],
     "others": ["Is it bad to sleep right after eating dinner?",
                "How much sleep does a teenager need?"],
     "easy": "What is the capital of Australia?"},
    {"clusters": [
        ["Is it safe to take ibuprofen and paracetamol together?",
         "Can I take paracetamol and ibuprofen at the same time?",
         "Can you combine ibuprofen with acetaminophen for pain?"],
        ["Should I take ibuprofen with food?",
         "Is it ok to take ibuprofen on an empty stomach?"]],
     "others": ["How long does it take for paracetamol to work?",
                "Can I drink alcohol while taking ibuprofen?"],
     "easy": "How do I become a data analyst without a degree?"},
    {"clusters": [
        ["Do I need a visa to visit Japan as a US citizen?",
         "Can Americans travel to Japan without a visa?",
         "Does a US passport holder need a tourist visa for Japan?"],
        ["What is the best time of year to visit Japan?",
         "When is the best season to travel to Japan?",
         "Which month is best for a trip to japan?"]],
     "others": ["How much money do I need for two weeks in Japan?",
                "Is the Japan Rail Pass worth it for a 10-day trip?"],
     "easy": "How do I unclog a kitchen sink without chemicals?"},
    {"clusters": [
        ["How early should I arrive at the airport for an international flight?",
         "How many hours before an international flight should I get to the airport?"],
        ["Can I bring a power bank in my checked luggage?",
         "Are power banks allowed in checked bags on planes?",
         "is it allowed to put a portable charger in checked-in baggage"]],
     "others": ["How much liquid can I take in my carry-on bag?",
                "What happens if I miss my connecting flight?"],
     "easy": "What is the difference between baking soda and baking powder?"},
    {"clusters": [
        ["What are some tips to beat jet lag?",
         "How can I get over jet lag quickly?",
         "How do you avoid jet lag after a long flight east?"]],
     "others": ["Is it better to sleep on a long-haul flight or stay awake?",
                "Why is jet lag worse when flying east?",
                "How do I choose a good seat on a long flight?"],
     "easy": "How do I calculate the area of a circle?"},
    {"clusters": [
        ["Should I pay off my student loans or invest?",
         "Is it smarter to pay down student debt early or put the money in index funds?",
         "Invest or pay off student loans first?"],
        ["What is an index fund?",
         "How do index funds work?"]],
     "others": ["What is the difference between an index fund and an ETF?",
                "How do I consolidate my student loans?"],
     "easy": "What is the tallest mountain in Africa?"},
    {"clusters": [
        ["How can I improve my credit score fast?",
         "What is the quickest way to raise my credit score?",
         "how do i boost my credit score in a few months"],
        ["Does checking my own credit score lower it?",
         "Will looking at my credit report hurt my score?"]],
     "others": ["What credit score do I need to buy a house?",
                "How long do late payments stay on a credit report?"],
     "easy": "How do I teach my puppy to stop biting?"},
    {"clusters": [
        ["What is the 50/30/20 budgeting rule?",
         "How does the 50-30-20 budget rule work?"],
        ["How much of my salary should I save each month?",
         "What percentage of income should I be saving?",
         "How much money should a person save from every paycheck?"]],
     "others": ["How do I make a monthly budget spreadsheet?",
                "How big should my emergency fund be?"],
     "easy": "How far away is the Moon from Earth?"},
    {"clusters": [
        ["Is it better to rent or buy a house?",
         "Should I buy a home or keep renting?",
         "Renting vs buying a house: which makes more financial sense?"]],
     "others": ["How much should I put down on a house?",
                "What is the difference between a fixed and variable rate mortgage?",
                "Can I get a mortgage with a new job?"],
     "easy": "How do I get rid of fruit flies in my kitchen?"},
    {"clusters": [
        ["Why is the sky blue during the day and red at sunset?",
         "What makes sunsets red and orange when the sky is blue at noon?"],
        ["How do rainbows form?",
         "What causes a rainbow to appear after rain?",
         "Why do we see rainbows?"]],
     "others": ["Why are clouds white but rain clouds grey?",
                "Why is the ocean blue?"],
     "easy": "How do I write a cover letter with no experience?"},
    {"clusters": [
        ["How do black holes form?",
         "What process creates a black hole?",
         "How is a black hole made?"],
        ["What would happen if you fell into a black hole?",
         "What happens to a person who falls into a black hole?"]],
     "others": ["Can light escape from a black hole?",
                "What is the closest black hole to Earth?"],
     "easy": "Which programming language should I learn first?"},
    {"clusters": [
        ["How do vaccines work?",
         "How does a vaccine train the immune system?",
         "What does a vaccine actually do inside the body?"],
        ["What is the difference between a virus and a bacteria?",
         "How are viruses different from bacteria?"]],
     "others": ["Why do antibiotics not work against viruses?",
                "Why do we need a new flu vaccine every year?"],
     "easy": "How do I stop procrastinating on my thesis?"},
    {"clusters": [
        ["Why does ice float on water?",
         "What makes ice float instead of sinking in water?"],
        ["Why does salt melt ice on roads?",
         "How does putting salt on icy roads melt the ice?",
         "why do they spread salt on the road in winter"]],
     "others": ["Does hot water freeze faster than cold water?",
                "Why does water expand when it freezes?"],
     "easy": "What is a good gift for a 10 year old boy?"},
    {"clusters": [
        ["How do I answer 'What is your greatest weakness?' in a job interview?",
         "What is a good answer to the greatest weakness interview question?",
         "How should I respond when an interviewer asks about my weaknesses?"],
        ["What questions should I ask at the end of a job interview?",
         "What are good questions to ask the interviewer?"]],
     "others": ["How do I answer 'Why do you want to leave your current job?'",
                "How long should I wait to follow up after an interview?"],
     "easy": "How do I make sourdough starter from scratch?"},
    {"clusters": [
        ["How do I ask for a raise?",
         "What is the best way to ask my boss for a pay rise?",
         "How can I negotiate a salary increase with my manager?"],
        ["How do I negotiate salary for a new job offer?",
         "How can I negotiate a higher starting salary when I get an offer?"]],
     "others": ["Is it ok to accept a job offer and keep interviewing?",
                "How do I tell my boss I am quitting?"],
     "easy": "What causes earthquakes?"},
    {"clusters": [
        ["How do I switch careers into software engineering at 30?",
         "How can I change my career to software development in my thirties?",
         "What steps should I take to become a software engineer at 30 coming from another field?"]],
     "others": ["Are coding bootcamps worth the money?",
                "What does a software engineer do all day?",
                "Do I need a computer science degree to get a developer job?"],
     "easy": "How often should I water a snake plant?"},
    {"clusters": [
        ["How long should I rest a steak after cooking?",
         "How many minutes should a steak rest before cutting it?"],
        ["How do I know when a steak is medium rare?",
         "What internal temperature is a medium-rare steak?",
         "How do you tell when a steak is done to medium-rare?"]],
     "others": ["Should I salt steak before or after cooking?",
                "What is the best oil for searing steak?"],
     "easy": "How do I fix a Python ImportError?"},
    {"clusters": [
        ["What can I use instead of eggs in baking?",
         "What is a good egg substitute for cakes and muffins?",
         "How do i replace eggs in a baking recipe?"],
        ["Why did my cake sink in the middle?",
         "What makes a cake collapse in the centre after baking?"]],
     "others": ["Why are my cookies flat?",
                "Can I use oil instead of butter in a cake?"],
     "easy": "Is it worth learning Latin?"},
    {"clusters": [
        ["How do I cook perfect rice on the stove?",
         "How do I cook rice in a pot on the stovetop?",
         "How do you make fluffy rice in a pot?"],
        ["Is it safe to reheat cooked rice?",
         "Can you get food poisoning from reheated rice?"]],
     "others": ["How long does cooked rice last in the fridge?",
                "What is the difference between basmati and jasmine rice?"],
     "easy": "How do I connect my printer to Wi-Fi?"},
    {"clusters": [
        ["How many times a week should I work out to build muscle?",
         "How often should I lift weights to gain muscle?",
         "what is the best number of gym sessions per week for muscle growth"],
        ["Should I do cardio before or after weights?",
         "Is it better to run before lifting or after lifting?"]],
     "others": ["How much protein do I need to build muscle?",
                "Is it ok to work out when my muscles are still sore?"],
     "easy": "What is the meaning of the green light in The Great Gatsby?"},
    {"clusters": [
        ["How can I start running if I'm out of shape?",
         "What is a good running plan for complete beginners?",
         "How do I start jogging when I am unfit?"]],
     "others": ["How do I prevent shin splints when running?",
                "Is running every day bad for your knees?",
                "What should I eat before a morning run?"],
     "easy": "How do I export a Google Sheet as a PDF?"},
    {"clusters": [
        ["What is the fastest way to learn Spanish?",
         "How can I learn Spanish quickly?",
         "How do I become fluent in Spanish as fast as possible?"],
        ["Is Duolingo enough to become fluent?",
         "Can you reach fluency in a language using only Duolingo?"]],
     "others": ["Is Spanish or French easier for English speakers?",
                "How many words do I need to know to be conversational in a language?"],
     "easy": "What are the side effects of too much caffeine?"},
    {"clusters": [
        ["How do I improve my English speaking skills?",
         "How can I speak English more fluently?",
         "What are some ways to get better at spoken English?"],
        ["What is the difference between 'affect' and 'effect'?",
         "When do I use affect vs effect?"]],
     "others": ["How can I improve my English writing?",
                "What is the difference between 'who' and 'whom'?"],
     "easy": "Why do my headphones keep disconnecting from my laptop?"},
    {"clusters": [
        ["Why is my phone battery draining so fast?",
         "What makes a smartphone battery die quickly?",
         "my android phone battery drains really fast, why?"],
        ["Is it bad to charge my phone overnight?",
         "Does leaving a phone charging all night damage the battery?"]],
     "others": ["Does fast charging damage the battery?",
                "How do I check my iPhone battery health?"],
     "easy": "How do I get a refund for a cancelled train?"},
    {"clusters": [
        ["How do I speed up a slow Windows 10 laptop?",
         "What can I do to make my Windows 10 computer faster?",
         "My windows laptop is very slow, how do I fix it?"]],
     "others": ["Should I upgrade my laptop to an SSD?",
                "How much RAM do I need for programming?",
                "How do I free up space on my C drive?"],
     "easy": "What is the best way to learn to play the guitar?"},
    {"clusters": [
        ["How do I stop my dog from barking at strangers?",
         "How can I train my dog not to bark at people passing by?",
         "what is the best way to stop a dog barking at visitors"],
        ["How often should I feed an adult cat?",
         "How many times a day should a grown cat eat?"]],
     "others": ["Why does my cat knock things off the table?",
                "How do I stop my dog from pulling on the leash?"],
     "easy": "What is compound interest?"},
    {"clusters": [
        ["How do I get rid of mold in the bathroom?",
         "What is the best way to remove mould from a bathroom?",
         "how to clean black mold in my bathroom"],
        ["Why do my windows have condensation on the inside?",
         "What causes water droplets on the inside of windows in winter?"]],
     "others": ["How do I lower humidity in my house?",
                "How do I clean a washing machine that smells?"],
     "easy": "How do I calculate my BMI?"},
    {"clusters": [
        ["How often should I change my car's oil?",
         "How many miles between oil changes for a modern car?",
         "When should I get an oil change?"],
        ["Why is my check engine light on?",
         "What does it mean when the check engine light comes on?"]],
     "others": ["How often should I rotate my tyres?",
                "Is it worth buying an electric car in 2024?"],
     "easy": "How do I write a good essay introduction?"},
    {"clusters": [
        ["How do I keep basil alive indoors?",
         "Why does my supermarket basil plant keep dying?",
         "How do you care for a basil plant on a windowsill?"]],
     "others": ["When should I plant tomatoes outside?",
                "How do I get rid of aphids naturally?",
                "Why are the leaves on my tomato plant turning yellow?"],
     "easy": "How do I reset my router password?"},
    {"clusters": [
        ["What is the derivative of x^x?",
         "How do you differentiate x to the power of x?"],
        ["What is the intuition behind Bayes' theorem?",
         "Can someone explain Bayes theorem in simple terms?",
         "How do I understand Bayes' rule intuitively?"]],
     "others": ["What is the integral of ln(x)?",
                "What is the difference between probability and likelihood?"],
     "easy": "Which is better for a first car, a hatchback or a sedan?"},
    {"clusters": [
        ["Why did the Roman Empire fall?",
         "What were the main causes of the fall of the Western Roman Empire?",
         "What led to the collapse of Rome?"],
        ["Who built the pyramids of Giza?",
         "Who actually built the Egyptian pyramids?"]],
     "others": ["How long did the Roman Empire last?",
                "How were the pyramids built?"],
     "easy": "How do I get better at chess openings?"},
    {"clusters": [
        ["Is climate change caused by humans?",
         "How do we know that global warming is man-made?",
         "What is the evidence that humans are causing climate change?"]],
     "others": ["What is the difference between weather and climate?",
                "How much will sea levels rise by 2100?",
                "Do electric cars really reduce carbon emissions?"],
     "easy": "What is the best way to memorize vocabulary?"},
    {"clusters": [
        ["What is the best way to learn machine learning from scratch?",
         "How should a beginner start learning machine learning?",
         "Where do I start if I want to learn ML?"],
        ["What is the difference between AI, machine learning and deep learning?",
         "How are artificial intelligence, ML and deep learning related?"]],
     "others": ["How much math do I need for machine learning?",
                "What is overfitting in machine learning?"],
     "easy": "Why do onions make you cry?"},
    {"clusters": [
        ["What does \"idempotent\" mean in REST APIs?",
         "What is an idempotent HTTP method?"],
        ["What is the difference between PUT and PATCH?",
         "When should I use PATCH instead of PUT in a REST API?",
         "PUT vs PATCH, which one do I use for partial updates?"]],
     "others": ["What HTTP status code should I return for a validation error?",
                "What is the difference between REST and GraphQL?"],
     "easy": "How do I stop my glasses from fogging up with a mask?"},
    {"clusters": [
        ["How do I stop overthinking everything?",
         "How can I get out of my head and stop overthinking?",
         "What can I do to stop overthinking all the time?"]],
     "others": ["How do I deal with anxiety before a presentation?",
                "How do I make friends as an adult?",
                "Is journaling good for mental health?"],
     "easy": "How long does it take to fly from London to New York?"},
]
# fmt: on

#: Near misses: a question from a unit -> a question that shares most of its words but asks something else
#: (QQP's hardest negatives look like this). Each becomes a negative pair inside that unit.
NEAR_MISSES = {
    "How do I reverse a list in Python?": "How do I reverse a string in Python?",
    "How do I undo the last commit in git?": "How do I undo a git push to the remote?",
    "How do I delete a remote branch in Git?": "How do I delete a local branch in Git?",
    "How do I check if an array is empty in JavaScript?": (
        "How do I check if an object is empty in JavaScript?"
    ),
    "How do I find duplicate rows in a SQL table?": "How do I find duplicate rows in a pandas DataFrame?",
    "How do I find which process is using a port on Linux?": (
        "How do I find which process is using a port on Windows?"
    ),
    "What are the early signs of type 2 diabetes?": (
        "What are the early signs of type 1 diabetes in children?"
    ),
    "How many hours of sleep does an adult need?": "How many hours of sleep does a newborn baby need?",
    "Is it safe to take ibuprofen and paracetamol together?": "Is it safe to take ibuprofen while pregnant?",
    "Do I need a visa to visit Japan as a US citizen?": "Do I need a visa to visit China as a US citizen?",
    "How early should I arrive at the airport for an international flight?": (
        "How early should I arrive at the airport for a domestic flight?"
    ),
    "What are some tips to beat jet lag?": "What are some tips to sleep on a plane?",
    "Should I pay off my student loans or invest?": "Should I pay off my mortgage early or invest?",
    "How can I improve my credit score fast?": "How can I check my credit score for free?",
    "How much of my salary should I save each month?": "How much of my salary should I spend on rent?",
    "Is it better to rent or buy a house?": "Is it better to lease or buy a car?",
    "How do rainbows form?": "How do clouds form?",
    "How do black holes form?": "How do neutron stars form?",
    "How do vaccines work?": "How do antibiotics work?",
    "Why does salt melt ice on roads?": "Does adding salt make water boil faster?",
    "What questions should I ask at the end of a job interview?": (
        "What questions should I ask at the end of a first date?"
    ),
    "How do I ask for a raise?": "How do I ask for a promotion?",
    "How do I switch careers into software engineering at 30?": "How do I switch careers into nursing at 30?",
    "How long should I rest a steak after cooking?": "How long should I rest a turkey after roasting?",
    "What can I use instead of eggs in baking?": "What can I use instead of baking powder?",
    "How do I cook perfect rice on the stove?": "How do I cook perfect quinoa on the stove?",
    "How many times a week should I work out to build muscle?": (
        "How many times a week should I work out to lose weight?"
    ),
    "How can I start running if I'm out of shape?": "How can I start swimming if I'm out of shape?",
    "What is the fastest way to learn Spanish?": "What is the fastest way to learn Japanese?",
    "How do I improve my English speaking skills?": "How do I improve my public speaking skills?",
    "Why is my phone battery draining so fast?": "Why is my phone charging so slowly?",
    "How do I speed up a slow Windows 10 laptop?": "How do I speed up a slow Mac?",
    "How do I stop my dog from barking at strangers?": "How do I stop my dog from barking at night?",
    "How do I get rid of mold in the bathroom?": "How do I get rid of ants in the kitchen?",
    "How often should I change my car's oil?": "How often should I change my car's brake pads?",
    "How do I keep basil alive indoors?": "How do I keep mint alive indoors?",
    "What is the derivative of x^x?": "What is the integral of x^x?",
    "Why did the Roman Empire fall?": "Why did the Ottoman Empire fall?",
    "Is climate change caused by humans?": "Is climate change reversible?",
    "What is the best way to learn machine learning from scratch?": (
        "What is the best way to learn web development from scratch?"
    ),
    "What is the difference between PUT and PATCH?": "What is the difference between PUT and POST?",
    "How do I stop overthinking everything?": "How do I stop people-pleasing?",
}

#: Extra planted duplicate groups for the dedupe/Matcher demo (not used in any pair).
QUESTION_GROUPS: list[list[str]] = [
    [
        "How do I reset a forgotten Gmail password?",
        "I forgot my Gmail password, how can I recover my account?",
        "How to recover a Google account when I don't remember the password?",
    ],
    [
        "What is the best way to clean a cast iron pan?",
        "How should I wash a cast-iron skillet?",
        "How do you clean cast iron without ruining the seasoning?",
    ],
    ["How do I convert a string to an integer in Java?", "Java: how to parse a String into an int?"],
    [
        "Why do leaves change colour in autumn?",
        "What makes tree leaves turn red and yellow in the fall?",
        "Why do leaves turn orange in autumn?",
    ],
    [
        "How much water should I drink every day?",
        "How many glasses of water a day does a person need?",
        "What is the recommended daily water intake?",
    ],
    ["How do I get a passport renewed quickly?", "What is the fastest way to renew my passport?"],
    [
        "Is a Roth IRA better than a traditional IRA?",
        "Roth IRA vs traditional IRA: which one should I choose?",
        "Should I open a Roth or a traditional IRA?",
    ],
    [
        "How do I make my resume stand out?",
        "What makes a CV stand out to recruiters?",
        "How can I make my resume more attractive to employers?",
    ],
    [
        "How do I merge two dictionaries in Python?",
        "What's the cleanest way to combine two dicts in python 3?",
        "Python: merge two dictionaries into one",
    ],
    ["How do I stop hiccups?", "How can I get rid of hiccups fast?"],
    [
        "How do I center a div horizontally and vertically in CSS?",
        "CSS: how to center an element in the middle of the page?",
        "What is the easiest way to vertically center a div?",
    ],
    ["Why do we dream?", "What is the purpose of dreaming?"],
    [
        "How do solar panels generate electricity?",
        "How does a solar panel turn sunlight into power?",
        "What is the working principle of solar cells?",
    ],
    ["What are the health benefits of green tea?", "Is drinking green tea good for you?"],
    [
        "How do I stop my toddler from throwing tantrums?",
        "How should I handle temper tantrums in a 2 year old?",
        "What is the best way to deal with toddler meltdowns?",
    ],
    [
        "What is the difference between a crocodile and an alligator?",
        "How can you tell an alligator from a crocodile?",
    ],
    [
        "How do I take a screenshot on a Mac?",
        "What is the keyboard shortcut for a screenshot on macOS?",
        "How to capture the screen on a MacBook?",
    ],
    ["How do noise-cancelling headphones work?", "What is the technology behind active noise cancellation?"],
    [
        "How can I save money on groceries?",
        "What are some tips for spending less at the supermarket?",
        "How do I cut my grocery bill?",
    ],
    ["What is the speed of light?", "How fast does light travel?"],
    [
        "How do I stop snoring?",
        "What are effective remedies for snoring?",
        "How can I sleep without snoring?",
    ],
    ["Why is my Wi-Fi so slow at night?", "What makes home internet slower in the evening?"],
    [
        "How do I write a good commit message?",
        "What are the best practices for git commit messages?",
        "How should commit messages be written?",
    ],
    ["Can I freeze bread?", "Is it ok to put a loaf of bread in the freezer?"],
    ["What is inflation and why does it happen?", "What causes inflation?", "Why do prices go up over time?"],
]

# Exact, case and punctuation variants planted in sample_questions.csv (they normalise to an existing text).
VARIANTS = {
    "How do I reset a forgotten Gmail password?": [
        "how do i reset a forgotten gmail password",
        "HOW DO I RESET A FORGOTTEN GMAIL PASSWORD?",
    ],
    "What causes inflation?": ["What causes inflation?", "What causes inflation??"],
    "How do I take a screenshot on a Mac?": ["How do I take a screenshot on a Mac ?"],
    "Can I freeze bread?": ["can i freeze bread"],
    "Why do we dream?": ["Why do we dream?!", "  Why do we dream?  "],
    "How do I stop snoring?": ["How do I stop snoring?"],
    "What is the speed of light?": ["what is the speed of light?"],
    "How do I merge two dictionaries in Python?": ["How do I merge two dictionaries in python"],
}


def build_pairs(seed: int = 13, dup_rate: float = 0.37) -> list[tuple[str, str, int]]:
    """Positive pairs within clusters; hard and easy negatives within each unit, to a QQP-like rate."""
    rng = random.Random(seed)
    positives: list[list[tuple[str, str, int]]] = []
    neg_pools: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]] = []
    for unit in UNITS:
        pos = []
        for cluster in unit["clusters"]:
            combos = list(itertools.combinations(cluster, 2))
            if len(combos) > 4:  # a 4-cluster: a path through all members plus one chord
                combos = [
                    (cluster[0], cluster[1]),
                    (cluster[1], cluster[2]),
                    (cluster[2], cluster[3]),
                    (cluster[0], cluster[3]),
                ]
            pos.extend((a, b, 1) for a, b in combos)
        positives.append(pos)
        members = [q for c in unit["clusters"] for q in c]
        hard = [(a, b) for c1, c2 in itertools.combinations(unit["clusters"], 2) for a in c1 for b in c2]
        hard += [(a, o) for a in members for o in unit["others"]]
        hard += list(itertools.combinations(unit["others"], 2))
        easy = [(q, unit["easy"]) for q in members + unit["others"]]
        rng.shuffle(hard)
        rng.shuffle(easy)
        near = [(q, NEAR_MISSES[q]) for q in members if q in NEAR_MISSES]
        neg_pools.append((near + hard, easy))
    n_pos = sum(len(p) for p in positives)
    n_neg = round(n_pos * (1 - dup_rate) / dup_rate)
    per_unit = [n_neg // len(UNITS)] * len(UNITS)
    for i in rng.sample(range(len(UNITS)), n_neg - sum(per_unit)):
        per_unit[i] += 1
    pairs: list[tuple[str, str, int]] = []
    for pos, (hard, easy), quota in zip(positives, neg_pools, per_unit, strict=True):
        pairs.extend(pos)
        n_easy = 1 if quota >= 3 else 0
        chosen = easy[:n_easy] + hard[: quota - n_easy]
        pairs.extend((a, b, 0) for a, b in chosen)
    rng.shuffle(pairs)
    # Present each pair in a random order, as a person asking either question first would.
    return [(b, a, y) if rng.random() < 0.5 else (a, b, y) for a, b, y in pairs]


def write_pairs(path: Path) -> None:
    qids: dict[str, int] = {}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")  # Quora's convention: TSV, CSV quoting
        w.writerow(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"])
        for i, (a, b, y) in enumerate(build_pairs()):
            q1 = qids.setdefault(a, len(qids) + 1)
            q2 = qids.setdefault(b, len(qids) + 1)
            w.writerow([i, q1, q2, a, b, y])


def build_questions(seed: int = 7) -> list[tuple[str, str]]:
    """Rows (question, group) for the dedupe demo: one member per pair-data cluster, every hard/easy
    negative, the planted groups and their exact/case/punctuation variants, and a few blank rows."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for u, unit in enumerate(UNITS):
        for c, cluster in enumerate(unit["clusters"]):
            rows.append((cluster[0], f"u{u}c{c}"))
        for o, other in enumerate(unit["others"]):
            rows.append((other, f"u{u}o{o}"))
        for n, q in enumerate(q for c in unit["clusters"] for q in c if q in NEAR_MISSES):
            rows.append((NEAR_MISSES[q], f"u{u}n{n}"))
        rows.append((unit["easy"], f"u{u}e"))
    for g, group in enumerate(QUESTION_GROUPS):
        for q in group:
            rows.append((q, f"g{g}"))
            for v in VARIANTS.get(q, []):
                rows.append((v, f"g{g}"))
    rng.shuffle(rows)
    for pos, blank in zip((17, 88, 203, 251), ("", "   ", "", "\t"), strict=True):
        rows.insert(pos, (blank, ""))
    return rows


def write_questions(path: Path, truth_path: Path) -> None:
    rows = build_questions()
    with (
        open(path, "w", encoding="utf-8", newline="") as fh,
        open(truth_path, "w", encoding="utf-8", newline="") as th,
    ):
        w, t = csv.writer(fh, lineterminator="\n"), csv.writer(th, lineterminator="\n")
        w.writerow(["id", "question"])
        t.writerow(["id", "group"])
        for i, (q, g) in enumerate(rows, start=1):
            w.writerow([i, q])
            t.writerow([i, g])


if __name__ == "__main__":
    write_pairs(HERE / "sample_pairs.tsv")
    write_questions(HERE / "sample_questions.csv", HERE / "sample_questions_groups.csv")
